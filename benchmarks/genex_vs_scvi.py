"""Time GENEX (defaults) against scVI (scvi-tools defaults) on one simulation, and measure
what each removes: cross-validated 15-NN accuracy of batch and cell type.

Both train in this process on the same data and device, with the same thread count. Batch
accuracy near chance means the batch is mixed; cell-type accuracy should stay high. Chance
is given twice: the largest batch's share, and the accuracy of guessing each cell's batch
from its cell type alone (the floor that differing cell-type composition leaves even after a
perfect correction); the simulation's batch-free counts show the floor directly.

Usage::

    .venv/bin/python benchmarks/genex_vs_scvi.py [--cells N --genes G --device auto]

Without --cells/--genes it uses the default benchmark's simulation from config/config.yaml.
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from sklearn.decomposition import PCA
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from genex_core import GENEX
from genex_core.preprocessing import log_normalize
from workflow_scripts.data.simulate import simulate

CONFIG = Path(__file__).resolve().parents[1] / "config" / "config.yaml"


def default_simulation() -> dict:
    """The default benchmark's ``balanced`` scenario of config/config.yaml, or its first
    simulated dataset when there is none."""
    datasets = yaml.safe_load(CONFIG.read_text())["datasets"]
    name = "balanced" if "balanced" in datasets else next(n for n, d in datasets.items() if "simulate" in d)
    return datasets[name]["simulate"]


def knn_accuracy(X: np.ndarray, labels: np.ndarray, n_pcs: int | None = 30) -> float:
    """5-fold cross-validated 15-NN accuracy, on the PCA of ``X`` (``n_pcs=None``: on ``X``)."""
    Z = X if n_pcs is None else PCA(n_pcs, random_state=0).fit_transform(X)
    return float(cross_val_score(KNeighborsClassifier(15), Z, labels, cv=5).mean())


def composition_chance(batch: np.ndarray, cell_type: np.ndarray) -> float:
    """Accuracy of predicting the batch as the commonest batch of each cell type."""
    hits = 0
    for level in np.unique(cell_type):
        _, counts = np.unique(batch[cell_type == level], return_counts=True)
        hits += counts.max()
    return hits / batch.size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=None, help="scale the default's batches to this many cells")
    parser.add_argument("--genes", type=int, default=None)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads for both methods")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    params = default_simulation()
    if args.cells:
        shares = np.asarray(params["batchCells"]) / sum(params["batchCells"])
        params["batchCells"] = [max(1, round(args.cells * s)) for s in shares]
    if args.genes:
        params["nGenes"] = args.genes
    adata = simulate(params)
    cells = params["batchCells"]
    batch, cell_type = adata.obs["batch"].to_numpy(), adata.obs["cell_type"].to_numpy()
    print(
        f"data: {adata.n_obs} cells x {adata.n_vars} genes, batches {cells}, {len(np.unique(cell_type))} cell types; "
        f"{args.threads} torch threads"
    )

    genex = GENEX(adata, batch_key="batch", label_key="cell_type")
    start = time.perf_counter()
    genex.train(device=args.device, seed=0, progress=False)
    genex_s = time.perf_counter() - start
    genex_epochs = genex.train_args["max_epochs"]
    corrected = genex.get_corrected_expression()
    genex_latent = genex.get_latent_representation()

    import scvi  # imported late: its import alone takes seconds

    scvi.settings.seed = 0
    scvi_data = adata.copy()
    scvi.model.SCVI.setup_anndata(scvi_data, batch_key="batch")
    model = scvi.model.SCVI(scvi_data)
    accelerator = "gpu" if str(genex.device).startswith("cuda") else "cpu"
    start = time.perf_counter()
    model.train(accelerator=accelerator, enable_progress_bar=False)
    scvi_s = time.perf_counter() - start
    scvi_epochs = len(model.history["elbo_train"])
    scvi_latent = model.get_latent_representation()

    print(f"\n{'method':<8}{'device':>8}{'epochs':>8}{'s/epoch':>10}{'total s':>10}")
    print(f"{'GENEX':<8}{str(genex.device):>8}{genex_epochs:>8}{genex_s / genex_epochs:>10.3f}{genex_s:>10.1f}")
    print(f"{'scVI':<8}{accelerator:>8}{scvi_epochs:>8}{scvi_s / scvi_epochs:>10.3f}{scvi_s:>10.1f}")
    print(f"GENEX / scVI training time: {genex_s / scvi_s:.2f}")

    print(
        f"\n15-NN accuracy (5-fold CV); chance: largest batch {max(cells) / sum(cells):.3f}, "
        f"batch from cell type alone {composition_chance(batch, cell_type):.3f}"
    )
    rows = [
        ("raw log1p CP10k, PCA 30", log_normalize(adata.X).toarray(), 30),
        ("truth: batch-free counts, PCA 30", log_normalize(adata.layers["batchfree_counts"]).toarray(), 30),
        ("GENEX corrected, PCA 30", corrected, 30),
        ("GENEX latent", genex_latent, None),
        ("scVI latent", scvi_latent, None),
    ]
    print(f"{'representation':<36}{'batch':>8}{'cell type':>11}")
    for name, X, n_pcs in rows:
        print(f"{name:<36}{knn_accuracy(X, batch, n_pcs):>8.3f}{knn_accuracy(X, cell_type, n_pcs):>11.3f}")
    print(f"\nGENEX mode: {genex.mode}; {genex.summary()}")


if __name__ == "__main__":
    main()

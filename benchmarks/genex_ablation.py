"""GENEX ablation: which of its parts does the correcting, beside the closed-form and published rivals.

Trains, on the default scenarios of config/config.yaml (``--config config/stress.yaml`` for the
stress scenarios), every GENEX variant through the workflow's own runner
(``workflow_scripts.integrate.run.runner``) and scores it beside ``label_shift``, ComBat and scANVI
(and the unintegrated data and the batch-free truth as controls):

* ``batch_knn`` / ``type_knn``: 5-fold cross-validated 15-NN accuracy of batch and cell type on
  PCA(30) of the corrected values (batch: lower is better mixed; compare with the truth row);
* ``mse`` and ``w1``: distance to the truth T = log1p CP10k of ``layers['batchfree_means']``
  within each (batch, cell type) group, averaged over groups (``w1``: the per-gene 1-Wasserstein
  distance between the corrected and true values of the group's cells, averaged over genes);
* ``false_cond`` (``null_covariate`` only): genes called DE (Wilcoxon on the corrected values,
  Bonferroni p < 0.05) between the condition's levels within each cell type, averaged over
  cell types; the condition has no effect, so every call is false. ``false_type``: calls between
  each pair of cell types among genes whose true DE factors are equal, averaged over pairs;
* ``seconds``: the runner's wall time on one thread; ``cpu_s``: its process CPU time (what
  the wall time would be on an idle core; the two differ when the machine is shared).

Every GENEX variant trains with the same arguments (``--epochs``, batch 128). scANVI starts from
an scVI trained with ``--scvi-epochs`` (scvi-tools' own epoch choice would take minutes per
dataset). The table is the mean over ``--seeds`` (two by default).

Usage::

    .venv/bin/python benchmarks/genex_ablation.py [--config config/stress.yaml] [--seeds 0 1] [--out docs/genex_ablation.md]
"""

import argparse
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats
import torch
import yaml
from sklearn.decomposition import PCA
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from workflow_scripts.data.datasets import load_dataset  # noqa: E402
from workflow_scripts.integrate.run import runner  # noqa: E402

SCENARIOS = ("confounded", "interaction", "null_covariate", "platform")
# name: (runner, uses labels, arguments); GENEX variants get the shared training arguments.
VARIANTS = {
    "genex": ("genex", True, {}),
    "genex_no_equalise": ("genex", True, {"equalise_zeros": False}),
    "genex_no_adversarial": ("genex", True, {"adversarial": False}),
    "genex_offsets_only": ("genex", True, {"network": False}),
    "genex_label_free": ("genex_label_free", False, {}),
    "genex_label_free_offsets_only": ("genex_label_free", False, {"network": False}),
    "label_shift": ("label_shift", True, {}),
    "combat": ("combat", False, {}),
    "scanvi": ("scanvi", True, {}),
    "unintegrated": ("unintegrated", False, {}),
    "truth": ("truth", False, {}),
}
GENEX_RUNNERS = ("genex", "genex_label_free")
GENEX_EXTRA: dict = {}
BEGIN, END = "<!-- ablation table: written by benchmarks/genex_ablation.py -->", "<!-- end of ablation table -->"


def knn(X: np.ndarray, labels: np.ndarray, seed: int = 0) -> float:
    Z = PCA(min(30, X.shape[1] - 1), random_state=seed).fit_transform(X)
    return float(cross_val_score(KNeighborsClassifier(15), Z, labels, cv=5).mean())


def distances(corrected: np.ndarray, truth: np.ndarray, groups: np.ndarray) -> tuple[float, float]:
    """Mean over (batch, cell type) groups of the MSE and of the per-gene 1-Wasserstein
    distance (equal samples: the mean absolute difference of the sorted values)."""
    mse, w1 = [], []
    for g in np.unique(groups):
        c, t = corrected[groups == g], truth[groups == g]
        mse.append(np.mean((c - t) ** 2))
        w1.append(np.mean(np.abs(np.sort(c, axis=0) - np.sort(t, axis=0))))
    return float(np.mean(mse)), float(np.mean(w1))


def calls(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Genes called DE by a two-sided Wilcoxon rank-sum test, Bonferroni p < 0.05."""
    p = scipy.stats.mannwhitneyu(a, b, axis=0).pvalue
    return np.nan_to_num(p, nan=1.0) * a.shape[1] < 0.05


def false_calls(corrected: np.ndarray, adata) -> tuple[float, float]:
    obs = adata.obs
    types = obs["cell_type"].to_numpy()
    cond = []
    if "condition" in obs:
        for t in np.unique(types):
            rows = types == t
            case = obs["condition"].to_numpy() == "case"
            cond.append(calls(corrected[rows & case], corrected[rows & ~case]).sum())
    levels = np.unique(types)
    pair = []
    for i, a in enumerate(levels):
        for b in levels[i + 1 :]:
            null = adata.var[f"de_factor_{a}"].to_numpy() == adata.var[f"de_factor_{b}"].to_numpy()
            pair.append(calls(corrected[types == a], corrected[types == b])[null].sum())
    return (float(np.mean(cond)) if cond else float("nan")), float(np.mean(pair))


def dense(matrix) -> np.ndarray:
    return np.asarray(matrix.toarray() if hasattr(matrix, "toarray") else matrix, dtype=np.float64)


def run_variant(name: str, adata, seed: int, epochs: int, scvi_epochs: int, scvi_dir: dict) -> tuple[np.ndarray, float, float]:
    method, _, extra = VARIANTS[name]
    args = dict(extra)
    if method in GENEX_RUNNERS:
        args = {**GENEX_EXTRA, "max_epochs": epochs, "batch_size": 128, "device": "cpu", **args}
    start, cpu = time.perf_counter(), time.process_time()
    if method == "scanvi":
        key = id(adata)
        if key not in scvi_dir:
            result = runner("scvi")(adata, "batch", "cell_type", seed=seed, threads=1, max_epochs=scvi_epochs)
            path = Path(tempfile.mkdtemp(prefix="scvi_"))
            result.model.save(path, overwrite=True)
            scvi_dir[key] = (path, time.perf_counter() - start, time.process_time() - cpu)
        args["pretrained"] = scvi_dir[key][0]
    result = runner(method)(adata, "batch", "cell_type", seed=seed, threads=1, **args)
    seconds = time.perf_counter() - start + (scvi_dir[id(adata)][1] if method == "scanvi" else 0.0)
    cpu_s = time.process_time() - cpu + (scvi_dir[id(adata)][2] if method == "scanvi" else 0.0)
    return dense(result.corrected), seconds, cpu_s


def score(name: str, corrected: np.ndarray, adata, truth: np.ndarray, null: bool) -> dict:
    finite = np.isfinite(corrected).all(axis=0)
    c, t = corrected[:, finite], truth[:, finite]
    groups = adata.obs["batch"].astype(str).to_numpy() + "|" + adata.obs["cell_type"].astype(str).to_numpy()
    mse, w1 = distances(c, t, groups)
    row = dict(
        batch_knn=knn(c, adata.obs["batch"].to_numpy()),
        type_knn=knn(c, adata.obs["cell_type"].to_numpy()),
        mse=mse,
        w1=w1,
    )
    if null:
        row["false_cond"], row["false_type"] = false_calls(c, adata)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    parser.add_argument(
        "--scenarios",
        nargs="*",
        default=None,
        help="default: the config's confounded, interaction, null_covariate, platform (stress: all)",
    )
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1])
    parser.add_argument("--epochs", type=int, default=100, help="GENEX epochs, the same for every variant")
    parser.add_argument("--scvi-epochs", type=int, default=100)
    parser.add_argument("--genex-args", default="{}", help="JSON of extra GENEX.train arguments for every GENEX variant (tuning)")
    parser.add_argument("--out", default=None, help="markdown file to write the table to (e.g. docs/genex_ablation.md)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    GENEX_EXTRA.update(json.loads(args.genex_args))

    config = yaml.safe_load(Path(args.config).read_text())
    datasets = config["datasets"]
    scenarios = args.scenarios or [s for s in SCENARIOS if s in datasets] or list(datasets)
    rows = []
    with threadpool_limits(1):
        for scenario in scenarios:
            adata = load_dataset(scenario, datasets[scenario])
            means = dense(adata.layers["batchfree_means"])
            truth = np.log1p(means / means.sum(1, keepdims=True) * 1e4)
            null = scenario == "null_covariate"
            for seed in args.seeds:
                scvi_dir: dict = {}
                for name in args.variants:
                    corrected, seconds, cpu_s = run_variant(name, adata, seed, args.epochs, args.scvi_epochs, scvi_dir)
                    row = dict(
                        scenario=scenario,
                        variant=name,
                        seed=seed,
                        **score(name, corrected, adata, truth, null),
                        seconds=seconds,
                        cpu_s=cpu_s,
                    )
                    rows.append(row)
                    print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    table = pd.DataFrame(rows)
    metrics = [c for c in ("batch_knn", "type_knn", "mse", "w1", "false_cond", "false_type", "seconds", "cpu_s") if c in table]
    summary = table.groupby(["scenario", "variant"], sort=False)[metrics].mean().reset_index()
    text = summary.to_markdown(index=False, floatfmt=".3f")
    print("\n" + text)
    if args.out:
        command = "python benchmarks/genex_ablation.py " + " ".join(sys.argv[1:])
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        block = f"{BEGIN}\n`{command}` ({stamp}; seeds {args.seeds}, {args.epochs} GENEX epochs, 1 thread; mean over seeds)\n\n{text}\n{END}"
        path = Path(args.out)
        old = path.read_text() if path.exists() else "# GENEX ablation\n\n" + BEGIN + END + "\n"
        if BEGIN in old and END in old:
            new = old[: old.index(BEGIN)] + block + old[old.index(END) + len(END) :]
        else:
            new = old.rstrip() + "\n\n" + block + "\n"
        path.write_text(new)


if __name__ == "__main__":
    main()

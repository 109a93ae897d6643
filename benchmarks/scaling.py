"""How each stage's time and memory grow with the number of cells, extrapolated to 1M cells.

For each size (default 10,000 and 100,000 cells x 2,000 genes, 6 batches, 10 cell types, as
config/large.yaml): the simulator; GENEX's and scVI's seconds per epoch and peak memory
(trained in this process, same threads; GENEX from memory and from a backed h5ad); GENEX's
inference streamed to disk (``write_corrected``, float16); and the scIB metrics stage
(``workflow_scripts.score.scib.score_method`` on the unintegrated PCA embedding, quadratic
metrics subsampled above 20,000 cells). Growth: the log-log slope between the two largest sizes,
extrapolated to 1,000,000 cells.

Epochs are capped (``--epochs``, default 1) for timing: seconds per epoch is what grows with
the data; a real run multiplies it by its epochs (GENEX 10 at >= 6,000 cells, scVI
min(400, 8e6 / cells)). GENEX's epoch includes its full-data offset pass (and, with 1 epoch,
the initial one).

Memory: peak resident set size (RSS) of this process during the stage, sampled every 20 ms
by psutil (it sees torch's and numpy's allocations, which tracemalloc does not), reported as
the rise above the RSS when the stage started ("peak +MB"); the data simulated in the first
stage stays in memory for the later in-memory stages. Freed memory is handed back to the OS
before each stage (``gc.collect`` and glibc's ``malloc_trim``); what an allocator still keeps
(torch's, numpy's caches) is reused without showing as a rise, so a figure can be an
underestimate; a warm-up run at 600 cells (not reported) pays imports and first allocations.

With CUDA: GENEX's training cells per second on the GPU as well (not run where there is none).

Usage::

    .venv/bin/python benchmarks/scaling.py [--cells 10000 30000] [--threads 2] [--epochs 1]
"""

import argparse
import ctypes
import gc
import io
import math
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from contextlib import contextmanager, redirect_stdout
from pathlib import Path

import anndata as ad
import numpy as np
import psutil
import torch
from threadpoolctl import threadpool_limits

from genex_core import GENEX
from workflow_scripts.data.simulate import simulate

TARGET = 1_000_000
WARMUP_CELLS = 600
N_BATCHES, GENES = 6, 2000
GROUP_PROB = [0.2, 0.15, 0.13, 0.11, 0.1, 0.09, 0.08, 0.06, 0.05, 0.03]  # config/large.yaml's


def params(n_cells: int, seed: int = 21) -> dict:
    """config/large.yaml's simulation scaled to ``n_cells`` (its batch proportions)."""
    shares = np.array([20, 18, 17, 16, 15, 14]) / 100
    cells = [int(round(n_cells * s)) for s in shares]
    cells[0] += n_cells - sum(cells)
    return dict(
        nGenes=GENES, batchCells=cells, group_prob=GROUP_PROB, de_prob=0.1, de_facLoc=0.3, de_facScale=0.3,
        batch_facLoc=0.1, batch_facScale=0.1, batch_interaction_prob=0.3, seed=seed,
    )  # fmt: skip


def _malloc_trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


@contextmanager
def peak_rss(result: dict, interval: float = 0.02):
    """Time the block and sample this process's RSS; sets ``result['s']`` and ``['mb']``
    (peak RSS above the RSS at the start, MB)."""
    gc.collect()
    _malloc_trim()  # return memory freed by earlier stages to the OS, so this stage's rise shows
    proc = psutil.Process()
    start_rss = proc.memory_info().rss
    peak = [start_rss]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            done.wait(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    start = time.perf_counter()
    try:
        yield result
    finally:
        result["s"] = time.perf_counter() - start
        done.set()
        thread.join()
        peak[0] = max(peak[0], proc.memory_info().rss)
        result["mb"] = (peak[0] - start_rss) / 2**20


def measure(name: str, fn: Callable[[], object], per: float = 1.0) -> tuple[dict, object]:
    """Run ``fn`` under :func:`peak_rss`; ``s`` is divided by ``per`` (e.g. epochs)."""
    row: dict = {}
    with peak_rss(row):
        out = fn()
    row["s"] /= per
    print(f"  {name:<28}{row['s']:>10.2f} s{row['mb']:>10.0f} MB", flush=True)
    return row, out


def genex_train(data: ad.AnnData, epochs: int, device: str) -> GENEX:
    model = GENEX(data, batch_key="batch", label_key="cell_type")
    model.train(max_epochs=epochs, device=device, seed=0, progress=False)
    return model


def scvi_train(data: ad.AnnData, epochs: int) -> None:
    import scvi

    scvi.settings.seed = 0
    scvi.model.SCVI.setup_anndata(data, batch_key="batch")
    model = scvi.model.SCVI(data)
    model.train(max_epochs=epochs, accelerator="cpu", enable_progress_bar=False)


def metrics_stage(data: ad.AnnData, threads: int) -> None:
    from workflow_scripts.contract import to_contract
    from workflow_scripts.integrate.baseline import run_unintegrated
    from workflow_scripts.names import EMBEDDING
    from workflow_scripts.score.scib import score_method

    contract = to_contract(data.copy(), "scaling")
    integrated = ad.AnnData(obs=contract.obs[[]].copy())
    integrated.obsm[EMBEDDING] = run_unintegrated(contract, "batch", "cell_type", seed=0, threads=threads).embedding
    with redirect_stdout(io.StringIO()), warnings.catch_warnings():  # scib's per-resolution lines
        warnings.simplefilter("ignore")
        score_method(contract, integrated, "scaling", "unintegrated", threads=threads)


def run_size(n: int, args, tmp: Path) -> dict[str, dict]:
    rows: dict[str, dict] = {}
    print(f"\n{n:,} cells x {GENES:,} genes", flush=True)
    rows["simulate"], data = measure("simulate", lambda: simulate(params(n), n_threads=args.threads))
    for layer in list(data.layers):  # the truth layers: not what the methods read
        del data.layers[layer]
    path = tmp / f"counts_{n}.h5ad"
    data.write_h5ad(path)
    epochs = args.epochs
    rows["GENEX train (memory)"], model = measure("GENEX s/epoch (memory)", lambda: genex_train(data, epochs, "cpu"), epochs)
    rows["GENEX write_corrected"], _ = measure(
        "GENEX write_corrected f16", lambda: model.write_corrected(tmp / f"corrected_{n}.h5ad", dtype=np.float16)
    )
    model = None  # freed before the backed run
    backed = ad.read_h5ad(path, backed="r")
    rows["GENEX train (backed)"], _ = measure("GENEX s/epoch (backed)", lambda: genex_train(backed, epochs, "cpu"), epochs)
    backed.file.close()
    if torch.cuda.is_available():
        row, _ = measure("GENEX s/epoch (cuda)", lambda: genex_train(data, epochs, "cuda"), epochs)
        row["cells_per_s"] = n / row["s"]
        rows["GENEX train (cuda)"] = row
    rows["scVI train"], _ = measure("scVI s/epoch", lambda: scvi_train(data.copy(), epochs), epochs)
    rows["metrics (scIB, 1 rep.)"], _ = measure("metrics stage", lambda: metrics_stage(data, args.threads))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, nargs="+", default=[10_000, 100_000], help="sizes (at least 2)")
    parser.add_argument("--threads", type=int, default=2, help="torch and BLAS threads")
    parser.add_argument("--epochs", type=int, default=1, help="epochs timed per method (seconds are per epoch)")
    args = parser.parse_args()
    sizes = sorted(args.cells)
    if len(sizes) < 2:
        parser.error("--cells needs at least two sizes to fit a growth rate")
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    print(
        f"CPU, {args.threads} threads; epochs capped at {args.epochs} for timing (seconds per epoch); memory: peak RSS "
        "above the stage's start (psutil, sampled every 20 ms); CUDA: " + ("yes" if torch.cuda.is_available() else "no")
    )
    results: dict[int, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(args.threads):
        print("warm-up (imports, first allocations; not reported):", flush=True)
        run_size(WARMUP_CELLS, args, Path(tmp))
        for n in sizes:
            results[n] = run_size(n, args, Path(tmp))

    small, large = sizes[-2], sizes[-1]
    stages = list(results[large])
    head = "".join(f"{f'{n:,} s':>11}{f'{n:,} MB':>11}" for n in sizes)
    print(f"\n{'stage':<26}{head}{'slope s':>9}{'slope MB':>9}{'1M s':>10}{'1M MB':>10}")
    fits = {}
    for stage in stages:
        r = [results[n][stage] for n in sizes]
        cells = "".join(f"{x['s']:>11.2f}{x['mb']:>11.0f}" for x in r)
        a, b = results[small][stage], results[large][stage]
        slope_s = math.log(b["s"] / a["s"]) / math.log(large / small)
        slope_mb = math.log(max(b["mb"], 1) / max(a["mb"], 1)) / math.log(large / small)
        at_1m_s = b["s"] * (TARGET / large) ** max(slope_s, 0.0)  # a negative slope (noise): held flat
        at_1m_mb = max(b["mb"], 1) * (TARGET / large) ** max(slope_mb, 0.0)
        fits[stage] = (slope_s, at_1m_s, slope_mb, at_1m_mb)
        print(f"{stage:<26}{cells}{slope_s:>9.2f}{slope_mb:>9.2f}{at_1m_s:>10.0f}{at_1m_mb:>10.0f}")

    for n in sizes:
        g, s = results[n]["GENEX train (memory)"], results[n]["scVI train"]
        print(
            f"GENEX / scVI at {n:,} cells: time per epoch {g['s'] / s['s']:.2f}, peak memory {g['mb'] / max(s['mb'], 1):.2f}; "
            f"backed / in-memory GENEX peak memory {results[n]['GENEX train (backed)']['mb'] / max(g['mb'], 1):.2f}"
        )
        if "GENEX train (cuda)" in results[n]:
            print(f"GENEX on CUDA at {n:,} cells: {results[n]['GENEX train (cuda)']['cells_per_s']:,.0f} training cells/s")
    fastest = max(fits, key=lambda k: fits[k][0])
    slowest_1m = max(fits, key=lambda k: fits[k][1])
    print(
        f"Fastest-growing time: {fastest} (slope {fits[fastest][0]:.2f}); longest at 1M cells: {slowest_1m} "
        f"(~{fits[slowest_1m][1] / 60:.0f} min per epoch/run). Extrapolated from {small:,} and {large:,} cells "
        "(log-log slope); a slope below 1 at small sizes reflects fixed costs and underestimates 1M."
    )


if __name__ == "__main__":
    main()

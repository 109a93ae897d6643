"""Time the simulator on a large dataset (target: 100,000 cells x 2,000 genes in <= 60 s on 2 cores).

Usage: .venv/bin/python benchmarks/simulate_speed.py [--cells 100000] [--genes 2000] [--threads 2]
"""

import argparse
import resource
import time

from workflow_scripts.data.simulate import simulate

parser = argparse.ArgumentParser()
parser.add_argument("--cells", type=int, default=100_000)
parser.add_argument("--genes", type=int, default=2_000)
parser.add_argument("--threads", type=int, default=2)
args = parser.parse_args()

params = dict(
    nGenes=args.genes,
    batchCells=[args.cells // 4] * 4,
    group_prob=[0.4, 0.3, 0.2, 0.1],
    batch_interaction_prob=0.2,
    covariates=[{"name": "condition", "per_cell_type": True}, {"name": "sex", "levels": ["female", "male"]}],
    seed=0,
)
start = time.perf_counter()
adata = simulate(params, n_threads=args.threads, progress=True)
elapsed = time.perf_counter() - start
peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
print(
    f"{adata.n_obs:,} cells x {adata.n_vars:,} genes, {args.threads} threads: {elapsed:.1f} s, "
    f"peak RSS {peak_gb:.1f} GB, {adata.X.nnz / adata.n_obs:.0f} non-zeros per cell"
)

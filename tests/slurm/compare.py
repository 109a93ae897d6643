"""Do two runs of the workflow hold the same score tables? `compare.py LOCAL/results SLURM/results`

Compares every CSV (plain or gzipped) under the two results folders, except results/benchmarks/
(Snakemake's wall time and peak memory per job) and any column that holds a time or memory
measure. Values must be equal exactly (same seed, same threads: the same numbers). Prints one
line per table and exits 1 when a table is missing, extra, or differs."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

# Columns of Snakemake's benchmark files and of any cost table: measures of the run, not results.
RUN_MEASURES = {"s", "h:m:s", "max_rss", "max_vms", "max_uss", "max_pss", "io_in", "io_out",
                "mean_load", "cpu_time", "seconds", "wall_s", "peak_mem_mb"}


def tables(root: Path) -> dict[str, Path]:
    found = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and rel.parts[0] != "benchmarks" and path.name.endswith((".csv", ".csv.gz")):
            found[str(rel)] = path
    return found


def difference(a: pd.DataFrame, b: pd.DataFrame) -> str | None:
    """None when equal, else what differs."""
    a = a.drop(columns=[c for c in a.columns if c in RUN_MEASURES])
    b = b.drop(columns=[c for c in b.columns if c in RUN_MEASURES])
    if list(a.columns) != list(b.columns):
        return f"columns {list(a.columns)} vs {list(b.columns)}"
    if a.shape != b.shape:
        return f"shape {a.shape} vs {b.shape}"
    if a.equals(b):
        return None
    diffs = []
    for col in a.columns:
        x, y = a[col], b[col]
        if x.equals(y):
            continue
        if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
            gap = np.nanmax(np.abs(x.to_numpy(float) - y.to_numpy(float)))
            diffs.append(f"{col}: {int((x != y).sum())} values, max |diff| {gap:.3g}")
        else:
            diffs.append(f"{col}: {int((x.astype(str) != y.astype(str)).sum())} values")
    return "; ".join(diffs)


def main(local: Path, other: Path) -> int:
    left, right = tables(local), tables(other)
    failures = 0
    for name in sorted(set(left) | set(right)):
        if name not in right or name not in left:
            print(f"MISSING {name}: only in {'local' if name in left else 'SLURM'} run")
            failures += 1
            continue
        why = difference(pd.read_csv(left[name]), pd.read_csv(right[name]))
        print(f"{'equal' if why is None else 'DIFFERS'} {name}" + ("" if why is None else f": {why}"))
        failures += why is not None
    print(f"{len(set(left) | set(right)) - failures} of {len(set(left) | set(right))} tables equal "
          "(results/benchmarks/ and time/memory columns left out)")
    return 1 if failures or not left else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))

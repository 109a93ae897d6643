"""Do two runs of the workflow hold the same score tables? `compare.py LOCAL/results SLURM/results`

Compares every CSV (plain or gzipped) under the two results folders, except results/benchmarks/
(Snakemake's wall time and peak memory per job) and any column that holds a time or memory
measure. Same seed, same threads: the same numbers. Text, integer and boolean columns must be
equal exactly; float columns too, except for float32 rounding (|a - b| <= 1e-6 + 1e-5 |b|, NaN
where NaN): scvi-tools' DE log fold changes came out bit-identical in one run and 2e-7 apart in
another. Prints one line per table, saying which are bit-identical, and exits 1 when a table is
missing, extra, or differs beyond that."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

# Columns of Snakemake's benchmark files and of any cost table: measures of the run, not results.
RUN_MEASURES = {
    "s",
    "h:m:s",
    "max_rss",
    "max_vms",
    "max_uss",
    "max_pss",
    "io_in",
    "io_out",
    "mean_load",
    "cpu_time",
    "seconds",
    "wall_s",
    "peak_mem_mb",
}


def tables(root: Path) -> dict[str, Path]:
    found = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and rel.parts[0] != "benchmarks" and path.name.endswith((".csv", ".csv.gz")):
            found[str(rel)] = path
    return found


def difference(a: pd.DataFrame, b: pd.DataFrame) -> tuple[str | None, str]:
    """(what differs beyond float32 rounding or None, a note on rounding-level differences)."""
    a = a.drop(columns=[c for c in a.columns if c in RUN_MEASURES])
    b = b.drop(columns=[c for c in b.columns if c in RUN_MEASURES])
    if list(a.columns) != list(b.columns):
        return f"columns {list(a.columns)} vs {list(b.columns)}", ""
    if a.shape != b.shape:
        return f"shape {a.shape} vs {b.shape}", ""
    diffs, rounding = [], []
    for col in a.columns:
        x, y = a[col], b[col]
        if x.equals(y):
            continue
        if x.dtype.kind == "f" and y.dtype.kind == "f":
            u, v = x.to_numpy(), y.to_numpy()
            close = np.isclose(u, v, rtol=1e-5, atol=1e-6, equal_nan=True)
            gap = np.nanmax(np.abs(u - v))
            n = int((~((u == v) | (np.isnan(u) & np.isnan(v)))).sum())
            (rounding if close.all() else diffs).append(f"{col}: {n} values, max |diff| {gap:.3g}")
        else:
            diffs.append(f"{col}: {int((x.astype(str) != y.astype(str)).sum())} values")
    return ("; ".join(diffs) or None), "; ".join(rounding)


def main(local: Path, other: Path) -> int:
    left, right = tables(local), tables(other)
    failures = identical = 0
    for name in sorted(set(left) | set(right)):
        if name not in right or name not in left:
            print(f"MISSING {name}: only in {'local' if name in left else 'SLURM'} run")
            failures += 1
            continue
        why, rounding = difference(pd.read_csv(left[name]), pd.read_csv(right[name]))
        if why:
            print(f"DIFFERS {name}: {why}")
        elif rounding:
            print(f"equal within float32 rounding {name}: {rounding}")
        else:
            print(f"equal (bit-identical) {name}")
            identical += 1
        failures += why is not None
    total = len(set(left) | set(right))
    print(
        f"{total - failures} of {total} tables equal, {identical} bit-identical "
        "(results/benchmarks/ and time/memory columns left out)"
    )
    return 1 if failures or not left else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))

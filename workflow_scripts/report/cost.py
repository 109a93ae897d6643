"""Wall time and peak memory of every job, from Snakemake's ``benchmark:`` files."""

from pathlib import Path

import pandas as pd


def job_costs(results: str | Path = "results") -> pd.DataFrame:
    """One row per job: dataset, stage (the rule's family), step (method or rule), seconds and
    peak resident memory, read from ``results/benchmarks/<dataset>/[<stage>/]<step>.tsv``."""
    rows = []
    for path in sorted(Path(results, "benchmarks").glob("**/*.tsv")):
        parts = path.relative_to(Path(results, "benchmarks")).with_suffix("").parts
        dataset, stage, step = parts[0], parts[1] if len(parts) > 2 else parts[-1], parts[-1]
        last = pd.read_csv(path, sep="\t").iloc[-1]
        rows.append(dict(dataset=dataset, stage=stage, step=step, seconds=float(last["s"]), max_rss_mb=last["max_rss"]))
    return pd.DataFrame(rows, columns=["dataset", "stage", "step", "seconds", "max_rss_mb"])


def stage_summary(results: str | Path = "results") -> str:
    """Seconds per stage (summed over its jobs and datasets), as printed after a run."""
    costs = job_costs(results)
    if costs.empty:
        return "no benchmark files yet"
    per_stage = costs.groupby("stage", sort=False)["seconds"].agg(["sum", "count"])
    lines = [f"  {stage:<14} {row['sum']:7.1f} s over {int(row['count'])} jobs" for stage, row in per_stage.iterrows()]
    return "Job time per stage (sum of job wall times, from results/benchmarks):\n" + "\n".join(lines)

"""Concatenate per-dataset score tables into one summary table (rules ``*_summary``)."""

from pathlib import Path

import pandas as pd


def concat_tables(inputs: list[str | Path], output: str | Path) -> pd.DataFrame:
    """Stack tidy tables that share their columns, in input order."""
    table = pd.concat([pd.read_csv(p) for p in inputs], ignore_index=True)
    table.to_csv(output, index=False)
    return table


if __name__ == "__main__":
    from workflow_scripts.rule_log import log_to_file

    smk = snakemake  # noqa: F821 (injected by Snakemake's script: directive)
    with log_to_file(smk.log[0]):
        concat_tables(list(smk.input), smk.output[0])

"""The tidy score table every scoring stage writes (scIB, distance to the truth, DE,
explanations), and the one driver of the per-dataset score rules. Kept apart from the scorers
so that figures and the report read tables without importing scib."""

import json
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from workflow_scripts.registry import CONTROLS, LABEL_METHODS


def mark_methods(table: pd.DataFrame) -> pd.DataFrame:
    """Add ``role`` (``control`` or ``method``) and ``uses_labels`` (whether the method was
    given the cell-type labels) after ``method``, from the registry."""
    table = table.copy()
    at = table.columns.get_loc("method") + 1
    table.insert(at, "role", np.where(table["method"].isin(CONTROLS), "control", "method"))
    table.insert(at + 1, "uses_labels", table["method"].isin(LABEL_METHODS))
    return table


def read_failures(paths: Iterable[str | Path]) -> dict[str, str]:
    """{method: reason} from the failure records ``integrate.py`` writes."""
    records = [json.loads(Path(p).read_text()) for p in paths]
    return {r["method"]: r["reason"] for r in records}


def read_score_table(path: str | Path) -> pd.DataFrame:
    """A score table as written: empty notes stay empty strings, only ``value`` holds NaN."""
    return pd.read_csv(path, keep_default_na=False, na_values={"value": ["", "NaN", "nan"]})


def score_dataset(
    data_path: str | Path,
    integrated_paths: Iterable[str | Path],
    statuses: Mapping[str, str],
    score_one: Callable,
    missing_rows: Callable[[str, Mapping[str, str]], pd.DataFrame],
    finish: Callable[[pd.DataFrame], pd.DataFrame] = lambda table: table,
    **score_args,
) -> pd.DataFrame:
    """Every method's output of one dataset scored in one process (the scorers' imports and
    warm-up are paid once per dataset, not once per method).

    ``score_one(data, integrated, dataset, method, **score_args)`` scores one output;
    ``statuses`` ({method: "failed: <reason>" | "skipped: <why>"}) become ``missing_rows``, so a
    method that did not run stays in the table saying why; ``finish`` adds totals.
    """
    import anndata as ad

    from workflow_scripts.names import DATASET_UNS

    data = ad.read_h5ad(data_path)
    dataset = data.uns[DATASET_UNS]["name"]
    tables = []
    for path in integrated_paths:
        integrated = ad.read_h5ad(path)
        method = integrated.uns["method"]["name"]
        if method in statuses:
            raise ValueError(f"{method} on '{dataset}' has an output and is {statuses[method]!r}; remove the stale record")
        start = time.perf_counter()
        tables.append(score_one(data, integrated, dataset, method, **score_args))
        print(f"scored {method} on '{dataset}' in {time.perf_counter() - start:.1f} s", flush=True)
    tables.append(missing_rows(dataset, statuses))
    tables = [t for t in tables if not t.empty]
    if not tables:
        raise ValueError(f"nothing to score for '{dataset}': no outputs and no failed or skipped methods")
    return mark_methods(finish(pd.concat(tables, ignore_index=True)))


def run_score_rule(smk, score_one: Callable, missing_rows: Callable, **kwargs) -> None:
    """The Snakemake entry of a per-dataset score rule: ``input.data``, ``input.integrated``
    (the outputs of the methods that ran), ``input.failures`` (records of those that failed),
    ``params.skipped`` ({method: why}) -> ``output[0]``."""
    from workflow_scripts.rule_log import log_to_file

    with log_to_file(smk.log[0]):
        statuses = {m: f"failed: {reason}" for m, reason in read_failures(smk.input.failures).items()}
        statuses.update(smk.params.skipped)
        table = score_dataset(smk.input.data, smk.input.integrated, statuses, score_one, missing_rows, **kwargs)
        write_table(table, smk.output[0])


def write_table(table: pd.DataFrame, path: str | Path) -> None:
    """Write a CSV whole or not at all, never over a newer run's (the atomic writer's rules)."""
    from genex_core._atomic import replace_atomically

    replace_atomically(lambda tmp: table.to_csv(tmp, index=False), path)

"""The tidy score table every scoring stage writes (scIB, distance to the truth, DE,
explanations), kept apart from the scorers so that figures and the report read it without
importing scib."""

import json
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from workflow_scripts.methods import CONTROLS

COLUMNS = ["dataset", "method", "representation", "category", "metric", "scaling", "value", "note", "status"]
OK = "ok"


def mark_controls(table: pd.DataFrame) -> pd.DataFrame:
    """Add a ``role`` column after ``method``: ``control`` for the controls, else ``method``."""
    table = table.copy()
    table.insert(table.columns.get_loc("method") + 1, "role", np.where(table["method"].isin(CONTROLS), "control", "method"))
    return table


def read_failures(paths: Iterable[str | Path]) -> dict[str, str]:
    """{method: reason} from the failure records ``integrate.py`` writes."""
    records = [json.loads(Path(p).read_text()) for p in paths]
    return {r["method"]: r["reason"] for r in records}


def read_score_table(path: str | Path) -> pd.DataFrame:
    """A score table as written: empty notes stay empty strings, only ``value`` holds NaN."""
    return pd.read_csv(path, keep_default_na=False, na_values={"value": ["", "NaN", "nan"]})


def run_score_rule(smk, score_to_csv: Callable, collect: Callable, **score_args) -> None:
    """The Snakemake entry of a score module (``scib_scores``, ``truth_scores``): ``params.step``
    "score" scores one method's output, "collect" gathers a dataset's tables and failures."""
    from workflow_scripts.rule_log import log_to_file

    with log_to_file(smk.log[0]):
        if smk.params.step == "score":
            score_to_csv(smk.input.data, smk.input.integrated, smk.output[0], **score_args)
        else:
            collect(smk.input.scores, read_failures(smk.input.failures), smk.output[0], smk.params.dataset)

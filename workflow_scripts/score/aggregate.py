"""Replicates summarised (rule ``aggregate`` -> ``results/aggregate/``): every score's mean and
95 % t-interval over seeds, and each method's rank per seed with how stable it is, per base
dataset and sweep value. The sweep figure reads these tables, never the per-replicate ones.

* ``<table>.csv`` (scib, expression, de, explain): one row per (base dataset, sweep value,
  method, representation, category, metric, ...) with ``n_seeds`` (seeds with an ``ok`` value),
  ``mean``, ``sd``, ``ci_low``, ``ci_high`` (NaN with one seed) and ``status`` (``ok``, or the
  first other status, e.g. a failure, with the number of seeds it holds in).
* ``aspects.csv``: the verdict's aspects (:data:`workflow_scripts.score.verdict.ASPECTS`, e.g. scIB
  overall at each method's best representation) the same way, with ``modal_rank`` and
  ``rank_stability``: the share of seeds in which the method has its most frequent rank within
  its group (1 = the same rank in every seed; controls unranked).
* ``ranks.csv``: each method's value and rank per seed, from which the stability is counted.
"""

from pathlib import Path

import pandas as pd

from workflow_scripts.names import OK
from workflow_scripts.score.intervals import rank_stability, t_interval
from workflow_scripts.score.verdict import ASPECTS, CONTROL_GROUP, aspect_entries

SCORE_TABLES = ("scib", "expression", "de", "explain")
WHERE = ["base_dataset", "sweep_parameter", "sweep_value"]  # what a seed replicates
STATS = ["n_seeds", "mean", "sd", "ci_low", "ci_high"]
NOT_KEYS = {"dataset", "value", "note", "status", "seed"}


def _stats(values: pd.Series) -> pd.Series:
    mean, sd, low, high = t_interval(values)
    return pd.Series([int(values.notna().sum()), mean, sd, low, high], index=STATS)


def _status(statuses: pd.Series) -> str:
    """'ok' when every seed is, else the first other status and in how many seeds it holds."""
    other = statuses[statuses != OK]
    return OK if other.empty else f"{other.iloc[0]} (in {len(other)} of {len(statuses)} seeds)"


def _over_seeds(table: pd.DataFrame, keys: list[str], extra=None) -> pd.DataFrame:
    """One row per ``keys``: :func:`_stats` of ``value`` and whatever ``extra`` (group -> Series) adds."""

    def one(group: pd.DataFrame) -> pd.Series:
        return pd.concat([_stats(group["value"]), *([extra(group)] if extra else [])])

    out = table.groupby(keys, sort=False, dropna=False)[[c for c in table.columns if c not in keys]].apply(one)
    return out.reset_index().astype({"n_seeds": int})


def _with_replicates(table: pd.DataFrame, replicates: pd.DataFrame) -> pd.DataFrame:
    """The table with each dataset's base dataset, sweep value and seed."""
    unknown = set(table["dataset"]) - set(replicates["dataset"])
    if unknown:
        raise ValueError(f"datasets {sorted(unknown)} are not replicates of this config")
    return table.merge(replicates, on="dataset", how="left", validate="many_to_one")


def aggregate_scores(table: pd.DataFrame, replicates: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95 % t-interval over seeds of every score of a tidy score table (its ``ok``
    values only); ``replicates`` maps each ``dataset`` to ``base_dataset``, ``sweep_parameter``,
    ``sweep_value`` and ``seed`` (workflow_scripts.replicates.replicate_rows)."""
    table = _with_replicates(table, replicates)
    keys = WHERE + [c for c in table.columns if c not in NOT_KEYS and c not in WHERE]
    table = table.assign(value=table["value"].where(table["status"] == OK))
    return _over_seeds(table, keys, lambda group: pd.Series({"status": _status(group["status"])}))


def aspect_ranks(tables: dict[str, pd.DataFrame], replicates: pd.DataFrame) -> pd.DataFrame:
    """Each method's value per (aspect, base dataset, sweep value, seed) (the mean over
    covariates and scopes for explanations) and its rank within its group (controls NaN)."""
    parts = []
    for aspect in ASPECTS:
        entries = aspect_entries(aspect, tables)
        if entries.empty:
            continue
        entries = _with_replicates(entries, replicates)
        values = entries.groupby([*WHERE, "seed", "group", "name"], sort=False, dropna=False)["value"].mean().reset_index()
        rank = values.groupby([*WHERE, "seed", "group"], dropna=False)["value"].rank(
            ascending=not aspect.higher_is_better, method="min"
        )
        values["rank"] = rank.where(values["group"] != CONTROL_GROUP)
        parts.append(values.assign(aspect=aspect.name, metric=aspect.metric, higher_is_better=aspect.higher_is_better))
    columns = ["aspect", "metric", "higher_is_better", *WHERE, "group", "name", "seed", "value", "rank"]
    ranks = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    return ranks[columns].rename(columns={"name": "method"})


def aggregate_aspects(ranks: pd.DataFrame) -> pd.DataFrame:
    """:func:`aspect_ranks` over seeds: mean, interval, modal rank and rank stability."""
    keys = ["aspect", "metric", "higher_is_better", *WHERE, "group", "method"]
    return _over_seeds(
        ranks, keys, lambda group: pd.Series(rank_stability(group["rank"]), index=["modal_rank", "rank_stability"])
    )


def write_aggregates(score_tables: dict[str, list[str]], replicates: pd.DataFrame, folder: str | Path) -> dict[str, pd.DataFrame]:
    """Write every aggregate table into ``folder``; ``score_tables``: {table: per-dataset CSVs}."""
    from workflow_scripts.score.table import read_score_table, write_table

    replicates = replicates.fillna({"sweep_parameter": "", "sweep_value": ""})
    tables = {name: pd.concat([read_score_table(p) for p in paths], ignore_index=True) for name, paths in score_tables.items()}
    out = {name: aggregate_scores(table, replicates) for name, table in tables.items()}
    verdict_tables = {
        "scib": tables["scib"],
        "truth": pd.concat([tables["expression"], tables["de"]]),
        "explain": tables["explain"],
    }
    out["ranks"] = aspect_ranks(verdict_tables, replicates)
    out["aspects"] = aggregate_aspects(out["ranks"])
    Path(folder).mkdir(parents=True, exist_ok=True)
    for name, table in out.items():
        write_table(table, Path(folder) / f"{name}.csv")
    return out


if __name__ == "__main__":
    from workflow_scripts.rule_log import log_to_file

    smk = snakemake  # noqa: F821 (injected by Snakemake's script: directive)
    with log_to_file(smk.log[0]):
        inputs = {name: list(smk.input[name]) for name in SCORE_TABLES}
        write_aggregates(inputs, pd.DataFrame(smk.params.replicates), Path(smk.output[0]).parent)
        print(f"aggregated {len(smk.params.replicates)} replicates into {Path(smk.output[0]).parent}")

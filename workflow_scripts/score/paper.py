"""Our measurements beside a paper's published numbers (config ``published:``), and which of
the paper's claims reproduce: the score-stage half of figure ``paper`` (which only draws).

The published values are a small cited table (``config/published/genex_paper.csv``: columns
``measure, method, representation, value, source``), read here and never mixed into our score
tables. Our side of each measure (:data:`MEASURES`) follows the paper's protocol:

- scIB: raw totals (``scib_summary.csv``, category ``total``, scaling ``raw``) of the
  representation the paper scored for that method (PCA of the corrected expression, or the
  embedding); methods it did not report: PCA of corrected expression where there is one.
- DE F1: the paper tested one group against the rest (:data:`PAPER_GROUP`); ``f1_paper`` of
  ``de.csv`` is the mean over every cell type against the rest, so the F1 of that one
  comparison (:func:`group_f1`, sklearn's ``f1_score``) is computed from the per-gene Wilcoxon
  tables. Where they lack it, the mean is taken and the ``note`` says so.
- MSE and Wasserstein distance of the corrected expression to the batch-free truth
  (``truth_summary.csv``).

:func:`comparison` is the table the figure draws (``results/paper_comparison.csv``: one row per
dataset, measure and method, our value and the published one); :func:`claims` turns it into
caption-ready sentences (``results/paper_claims.csv``): for every method the paper compared
with :data:`FOCUS`, whether our measurements order the two as the paper's numbers do.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from workflow_scripts.names import OK, REST
from workflow_scripts.score.table import read_score_table

PAPER_GROUP = "Group1"  # the paper's DE comparison: this group against the rest
FOCUS = "genex"  # the method whose published claims are checked
PUBLISHED_COLUMNS = ["measure", "method", "representation", "value", "source"]
COMPARISON_COLUMNS = ["dataset", "measure", "method", "role", "representation", "measured", "published", "status", "note"]
CLAIMS_COLUMNS = ["dataset", "measure", "method", "verdict", "text"]
FAILED = "failed"
NOT_RUN = "not run here"
NOT_APPLICABLE = "n/a"


@dataclass(frozen=True)
class Measure:
    title: str
    family: str  # which of our tables: scib, de or truth
    metric: str  # its metric name there
    higher_is_better: bool
    unit_interval: bool  # a 0-1 score, drawn on a fixed 0-1 axis


MEASURES = {
    "scib_overall": Measure("scIB overall", "scib", "overall", True, True),
    "scib_batch": Measure("scIB batch", "scib", "batch_score", True, True),
    "scib_bio": Measure("scIB bio", "scib", "bio_score", True, True),
    "f1_paper": Measure("DE F1 (paper protocol)", "de", "f1_paper", True, True),
    "mse": Measure("MSE to the truth", "truth", "mse", False, False),
    "wasserstein": Measure("Wasserstein to the truth", "truth", "wasserstein", False, False),
}
# our representations of each family, preferred first, for methods the paper did not report
REPRESENTATIONS = {"scib": ("corrected_pca", "embedding"), "de": ("wilcoxon",), "truth": ("corrected",)}
SCIB_CATEGORY, DE_CATEGORY = "total", "cell_type_vs_rest"


def read_published(path: str | Path) -> pd.DataFrame:
    """The published values, checked: the columns, known measures, numbers, one value per
    measure and method (a second representation of one method would need its own row)."""
    table = pd.read_csv(path)
    missing = set(PUBLISHED_COLUMNS) - set(table.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)} (expected {PUBLISHED_COLUMNS})")
    unknown = set(table["measure"]) - set(MEASURES)
    if unknown:
        raise ValueError(f"{path}: unknown measures {sorted(unknown)} (known: {list(MEASURES)})")
    table = table.assign(value=pd.to_numeric(table["value"], errors="raise"), source=table["source"].fillna(""))
    repeated = table[table.duplicated(["measure", "method"], keep=False)]
    if not repeated.empty:
        raise ValueError(f"{path}: more than one value per measure and method: {repeated[['measure', 'method']].values.tolist()}")
    return table[PUBLISHED_COLUMNS]


def group_f1(genes: list[str], group: str = PAPER_GROUP) -> pd.DataFrame:
    """F1 of the paper-protocol calls (``significant_paper``) of ``group`` against the rest,
    per dataset and method, from per-gene Wilcoxon tables (columns dataset, method, level,
    reference, significant_paper, is_true). Tables without that comparison give no row."""
    columns = ["dataset", "method", "level", "reference", "significant_paper", "is_true"]
    rows = []
    for path in genes:
        table = pd.read_csv(path, usecols=lambda c: c in columns + ["workflow"])
        if "workflow" in table and not table["workflow"].eq("wilcoxon").all():
            continue
        selected = table[(table["level"].astype(str) == group) & (table["reference"] == REST)]
        for (dataset, method), chosen in selected.groupby(["dataset", "method"], sort=False):
            truth, called = chosen["is_true"].to_numpy(dtype=float), chosen["significant_paper"].to_numpy(dtype=float)
            defined = not (np.isnan(truth).any() or np.isnan(called).any()) and 0 < truth.sum() < truth.size
            value = f1_score(truth.astype(bool), called.astype(bool)) if defined else np.nan
            rows.append((str(dataset), str(method), value))
    return pd.DataFrame(rows, columns=["dataset", "method", "value"])


def measured(scib: str, truth: str, de: list[str], genes: list[str], group: str = PAPER_GROUP):
    """Our side: a long table (dataset, method, measure, representation, value) of every
    measure, the failures {(dataset, method): reason}, the roles {method: role}, the methods in
    table order, and per dataset how its DE F1 was computed."""
    tables = {
        "scib": read_score_table(scib),
        "truth": read_score_table(truth),
        "de": pd.concat([read_score_table(p) for p in de], ignore_index=True),
    }
    every = pd.concat(tables.values(), ignore_index=True)
    failed = every[every["status"].str.startswith(FAILED)].drop_duplicates(["dataset", "method"])
    failures = {(r.dataset, r.method): failure(r.status) for r in failed.itertuples()}
    roles = every.drop_duplicates("method").set_index("method")["role"].to_dict()
    order = list(dict.fromkeys(every["method"]))
    metric_of = {(m.family, m.metric): key for key, m in MEASURES.items()}
    scib_table = tables["scib"]
    parts = [
        scib_table[(scib_table["category"] == SCIB_CATEGORY) & (scib_table["scaling"] == "raw")].assign(family="scib"),
        tables["truth"].assign(family="truth"),
    ]
    de_table = tables["de"]
    de_table = de_table[(de_table["representation"] == "wilcoxon") & (de_table["category"] == DE_CATEGORY)]
    by_group = group_f1(genes, group)
    basis = {}
    for dataset in dict.fromkeys(every["dataset"]):
        ours = by_group[by_group["dataset"] == dataset]
        if ours.empty:
            basis[dataset] = f"mean over cell types vs rest (no {group}-vs-rest comparison here; the paper: {group} vs rest)"
            parts.append(de_table[de_table["dataset"] == dataset].assign(family="de"))
        else:
            basis[dataset] = f"{group} vs rest, as the paper"
            parts.append(ours.assign(family="de", metric="f1_paper", representation="wilcoxon", status=OK))
    long = pd.concat(parts, ignore_index=True)
    long["measure"] = [metric_of.get(k) for k in zip(long["family"], long["metric"], strict=False)]
    long = long[long["measure"].notna() & long["status"].eq(OK)]
    return long[["dataset", "method", "measure", "representation", "value"]], failures, roles, order, basis


def representation(published: pd.DataFrame, family: str, method: str, available: set[str]) -> str | None:
    """Which of our representations of a method stands for ``family``'s measures: the one the
    paper scored for it, else the first of :data:`REPRESENTATIONS` we have."""
    named = published[published["measure"].map(lambda m: MEASURES[m].family) == family]
    named = named.loc[named["method"] == method, "representation"]
    if not named.empty:
        return named.iloc[0]
    return next((r for r in REPRESENTATIONS[family] if r in available), None)


def comparison(published: pd.DataFrame, ours: pd.DataFrame, failures: dict, order: list[str]) -> pd.DataFrame:
    """One row per dataset, published measure and method (ours first in table order, then the
    paper's other methods): ``measured`` and ``published`` values, the representation, and
    ``status``: ok, ``failed: <reason>``, :data:`NOT_RUN` or :data:`NOT_APPLICABLE`."""
    measures = [m for m in MEASURES if m in set(published["measure"])]
    methods = list(dict.fromkeys([*order, *published["method"]]))
    rows = []
    for dataset in dict.fromkeys(ours["dataset"].tolist() + [d for d, _ in failures]):
        here = ours[ours["dataset"] == dataset]
        ran = set(here["method"]) | {m for d, m in failures if d == dataset}
        for measure in measures:
            family = MEASURES[measure].family
            values = here[here["measure"] == measure]
            for method in methods:
                pub = published[(published["measure"] == measure) & (published["method"] == method)]
                rep = representation(published, family, method, set(values.loc[values["method"] == method, "representation"]))
                mine = values.loc[(values["method"] == method) & (values["representation"] == rep), "value"].dropna()
                if not mine.empty:
                    status = OK
                elif (dataset, method) in failures:
                    status = f"{FAILED}: {failures[dataset, method]}"
                elif method not in ran:
                    status = NOT_RUN
                else:
                    status = NOT_APPLICABLE
                rows.append(
                    (
                        dataset,
                        measure,
                        method,
                        rep if rep is not None else (pub["representation"].iloc[0] if not pub.empty else ""),
                        mine.iloc[0] if not mine.empty else np.nan,
                        pub["value"].iloc[0] if not pub.empty else np.nan,
                        status,
                    )
                )
    return pd.DataFrame(rows, columns=["dataset", "measure", "method", "representation", "measured", "published", "status"])


def claims(table: pd.DataFrame, focus: str = FOCUS) -> pd.DataFrame:
    """Caption-ready sentences, one per dataset, measure and method the paper compared with
    ``focus``: does our ordering of the two match the paper's? Where the paper reported only
    ``focus``, the difference of the values. ``verdict``: reproduces, does not reproduce,
    not testable (a value missing) or value only."""
    rows = []
    for (dataset, measure), panel in table.groupby(["dataset", "measure"], sort=False):
        spec = MEASURES[measure]
        mine = panel[panel["method"] == focus]
        if mine.empty or np.isnan(mine["published"].iloc[0]):
            continue
        mine = mine.iloc[0]
        others = panel[(panel["method"] != focus) & panel["published"].notna()]
        if others.empty:
            shift = mine.measured - mine.published
            text = f"{focus} {spec.title}: published {mine.published:.3g}, measured " + (
                f"{mine.measured:.3g} ({shift:+.3g})" if not np.isnan(shift) else f"none ({mine.status})"
            )
            rows.append((dataset, measure, focus, "value only" if not np.isnan(shift) else "not testable", text))
        for other in others.itertuples():
            if mine.published == other.published:
                continue  # the paper orders nothing here
            better = (mine.published > other.published) == spec.higher_is_better
            claim = f"{focus} {'better' if better else 'worse'} than {other.method} on {spec.title}"
            published = f"published {mine.published:.3g} vs {other.published:.3g}"
            missing = [f"{m.method}: {m.status}" for m in (mine, other) if m.status != OK]
            if missing:
                verdict, measured_text = "not testable", "; ".join(missing)
            else:
                same = np.sign(mine.measured - other.measured) == np.sign(mine.published - other.published)
                verdict = "reproduces" if same else "does not reproduce"
                measured_text = f"measured {mine.measured:.3g} vs {other.measured:.3g}"
            rows.append((dataset, measure, other.method, verdict, f"{claim} ({published}; {measured_text}): {verdict}"))
    return pd.DataFrame(rows, columns=["dataset", "measure", "method", "verdict", "text"])


def failure(status: str) -> str:
    """The reason of a ``failed: <reason>`` status, or '' for ``ok``."""
    return status.removeprefix(f"{FAILED}: ") if status.startswith(FAILED) else ""


def paper_tables(
    published: str | Path,
    scib: str | Path,
    truth: str | Path,
    de: list[str],
    genes: list[str],
    group: str = PAPER_GROUP,
    focus: str = FOCUS,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The comparison table (:data:`COMPARISON_COLUMNS`: with each method's ``role``, '' for the
    paper's methods we do not run, and in ``note`` of the DE F1 rows how it was measured) and
    the claims (:data:`CLAIMS_COLUMNS`)."""
    paper = read_published(published)
    ours, failures, roles, order, basis = measured(scib, truth, de, genes, group)
    table = comparison(paper, ours, failures, order)
    table.insert(3, "role", table["method"].map(roles).fillna(""))
    table["note"] = np.where(table["measure"] == "f1_paper", table["dataset"].map(basis).fillna(""), "")
    return table[COMPARISON_COLUMNS], claims(table, focus)[CLAIMS_COLUMNS]

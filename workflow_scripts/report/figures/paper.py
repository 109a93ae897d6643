"""Figure: our measurements beside a paper's published numbers (config ``published:``).

The published values are a small cited table (``config/published/genex_paper.csv``: columns
``measure, method, representation, value, source``), read here and never mixed into our score
tables. One panel per published measure (:data:`MEASURES`) and dataset, one row per method:
our value filled, the published one hollow; a method the paper reported that we do not run is
drawn as published only ("not run here"), one of ours that failed says so.

Our side of each measure follows the paper's protocol:

- scIB: raw totals (``scib_summary.csv``, category ``total``, scaling ``raw``) of the
  representation the paper scored for that method (PCA of the corrected expression, or the
  embedding); methods it did not report: PCA of corrected expression where there is one.
- DE F1: the paper tested one group against the rest (:data:`PAPER_GROUP`); ``f1_paper`` of
  ``de.csv`` is the mean over every cell type against the rest, so the F1 of that one
  comparison is recomputed from the per-gene Wilcoxon tables. Where they lack it, the mean is
  drawn and the figure says so.
- MSE and Wasserstein distance of the corrected expression to the batch-free truth
  (``truth_summary.csv``).

:func:`claims` turns it into caption-ready sentences: for every method the paper compared with
:data:`FOCUS`, whether our measurements order the two as the paper's numbers do.
"""

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.transforms import blended_transform_factory
from sklearn.metrics import f1_score

from workflow_scripts.names import OK
from workflow_scripts.report.figures.common import FAILED, PALETTE, failure, mark_controls, read_table

PAPER_GROUP = "Group1"  # the paper's DE comparison: this group against the rest
FOCUS = "genex"  # the method whose published claims are checked
REST = "rest"  # reference of a cell type against all other cells (workflow_scripts.analyse.de.REST)
PUBLISHED_COLUMNS = ["measure", "method", "representation", "value", "source"]
NOT_RUN = "not run here"
NOT_APPLICABLE = "n/a"
MEASURED = dict(marker="o", color=PALETTE[0], markerfacecolor=PALETTE[0], markeredgecolor="black", markeredgewidth=0.5)
PUBLISHED = dict(marker="D", color=PALETTE[5], markerfacecolor="none", markeredgecolor=PALETTE[5], markeredgewidth=1.6)
FAILED_COLOUR = "#D55E00"


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
        "scib": read_table(scib),
        "truth": read_table(truth),
        "de": pd.concat([read_table(p) for p in de], ignore_index=True),
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


def _entry_labels(methods: list[str], roles: dict, table: pd.DataFrame, failures: dict, dataset: str) -> list[str]:
    labels = []
    for method in methods:
        text = method + (" (control)" if roles.get(method) == "control" else "")
        statuses = set(table.loc[table["method"] == method, "status"])
        if (dataset, method) in failures:
            text += f"\n{FAILED}: {failures[dataset, method]}"
        elif statuses == {NOT_RUN}:
            text += "\n(published only, not run here)"
        labels.append(text)
    return labels


def _limits(panel: pd.DataFrame, spec: Measure) -> tuple[float, float]:
    if spec.unit_interval:
        return -0.03, 1.03
    top = np.nanmax(np.concatenate([panel["measured"].to_numpy(float), panel["published"].to_numpy(float), [0.0]]))
    return 0.0, (top or 1.0) * 1.15


def _panel(ax, panel: pd.DataFrame, methods: list[str], spec: Measure) -> None:
    """One measure of one dataset: a row per method, measured filled, published hollow, a
    grey line between them, and a written mark where our value is missing."""
    low, high = _limits(panel, spec)
    ax.set_xlim(low, high)
    where = blended_transform_factory(ax.transAxes, ax.transData)
    for y, method in enumerate(methods):
        row = panel[panel["method"] == method]
        if row.empty:
            continue
        row = row.iloc[0]
        if not np.isnan(row.measured) and not np.isnan(row.published):
            ax.plot([row.measured, row.published], [y, y], color="0.6", linewidth=1, zorder=1)
        if not np.isnan(row.published):
            ax.plot(row.published, y, linestyle="none", markersize=7, zorder=3, **PUBLISHED)
        if not np.isnan(row.measured):
            ax.plot(row.measured, y, linestyle="none", markersize=6, zorder=2, **MEASURED)
            continue
        if row.status == OK:
            continue
        mark = FAILED if row.status.startswith(FAILED) else row.status
        # beside the published marker, on the side with room
        left = np.isnan(row.published) or (row.published - low) / (high - low) > 0.5
        ax.text(
            0.04 if left else 0.96,
            y,
            mark,
            transform=where,
            ha="left" if left else "right",
            va="center",
            fontsize=6.5,
            color=FAILED_COLOUR if mark == FAILED else "0.3",
            style="italic",
        )
    ax.set_ylim(len(methods) - 0.5, -0.5)
    ax.set_xlabel(f"{'higher' if spec.higher_is_better else 'lower'} is better", fontsize=7)
    ax.tick_params(labelsize=7)
    ax.grid(axis="x", color="0.9")
    for y in range(len(methods)):
        ax.axhline(y, color="0.95", linewidth=0.6, zorder=0)


def draw(
    published: str,
    scib: str,
    truth: str,
    de: list[str],
    genes: list[str],
    group: str = PAPER_GROUP,
    focus: str = FOCUS,
    claims_csv: str | None = None,
):
    """Panels per published measure (columns) and dataset (rows); writes :func:`claims` to
    ``claims_csv`` when given, for the report."""
    paper = read_published(published)
    ours, failures, roles, order, basis = measured(scib, truth, de, genes, group)
    table = comparison(paper, ours, failures, order)
    found = claims(table, focus)
    if claims_csv:
        Path(claims_csv).parent.mkdir(parents=True, exist_ok=True)
        found.to_csv(claims_csv, index=False)
    methods = list(dict.fromkeys(table["method"]))
    # ours first, then the paper's other methods, controls last (they bracket, they are not ranked)
    methods.sort(key=lambda m: roles.get(m) == "control")
    datasets = list(dict.fromkeys(table["dataset"]))
    measures = list(dict.fromkeys(table["measure"]))
    fig, axes = plt.subplots(
        len(datasets),
        len(measures),
        figsize=(2.1 * len(measures) + 2.2, (0.34 * len(methods) + 1.3) * len(datasets)),
        squeeze=False,
        sharey="row",
    )
    for r, dataset in enumerate(datasets):
        here = table[table["dataset"] == dataset]
        for c, measure in enumerate(measures):
            ax = axes[r, c]
            _panel(ax, here[here["measure"] == measure], methods, MEASURES[measure])
            ax.set_title(MEASURES[measure].title + (f"\n{dataset}" if len(datasets) > 1 else ""), fontsize=8)
        axes[r, 0].set_yticks(range(len(methods)), _entry_labels(methods, roles, here, failures, dataset), fontsize=7)
        mark_controls(axes[r, 0].get_yticklabels(), [roles.get(m, "method") for m in methods])
    handles = [
        Line2D([], [], linestyle="none", markersize=6, label="measured here", **MEASURED),
        Line2D([], [], linestyle="none", markersize=7, label="published", **PUBLISHED),
    ]
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 0.97), fontsize=8)
    fig.suptitle(f"Measured here (filled) beside the published values (hollow): {Path(published).name}", x=0.01, ha="left")
    fig.tight_layout()
    _caption(fig, paper, table, found, basis, roles)
    return fig


def _caption(fig, paper: pd.DataFrame, table: pd.DataFrame, found: pd.DataFrame, basis: dict, roles: dict) -> None:
    """Under the figure: the claims and whether they reproduce, how each side was measured,
    and the sources of the published values."""
    several = table["dataset"].nunique() > 1
    lines = []
    tested = found[found["verdict"].isin(["reproduces", "does not reproduce"])]
    untested = int((found["verdict"] == "not testable").sum())
    if not found.empty:
        lines.append(
            f"Published claims: {int((tested['verdict'] == 'reproduces').sum())} of {len(tested)} testable orderings reproduce"
            + (f" ({untested} not testable)" if untested else "")
        )
        lines += [f"  {'• ' if not several else f'• {r.dataset}: '}{r.text}" for r in found.itertuples()]
    scib_rows = table["measure"].map(lambda m: MEASURES[m].family == "scib")
    scib = table[scib_rows & table["status"].ne(NOT_RUN) & ~table["representation"].isin([REPRESENTATIONS["scib"][0], ""])]
    if not scib.empty:
        methods = ", ".join(dict.fromkeys(f"{m} ({r})" for m, r in zip(scib["method"], scib["representation"], strict=False)))
        lines.append(f"scIB: raw totals on PCA of the corrected expression, except {methods}")
    if "f1_paper" in set(table["measure"]):
        lines += [f"DE F1{f' ({d})' if several else ''}: {b}" for d, b in basis.items() if d in set(table["dataset"])]
    not_run = sorted(set(table.loc[table["status"] == NOT_RUN, "method"]) - set(roles))
    if not_run:
        lines.append(f"{NOT_RUN}: {', '.join(not_run)} (published only)")
    lines += [f"Published: {s}" for s in dict.fromkeys(paper["source"]) if s]
    fig.text(0.01, 0, "\n".join(lines), fontsize=7, color="0.2", va="top", ha="left")

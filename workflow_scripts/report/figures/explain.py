"""Figure 5: how well each explanation method (GENEX's attributions and the rival rankings)
finds the genes the simulation tied to each covariate.

``explain`` plots the scores of ``explain_summary.csv`` (``method`` is the explanation method,
``representation`` overall or per cell type, ``category`` the covariate). ``explain_genes``
shows, for one dataset, GENEX's top genes per covariate level marked against the simulated
truth, and every method's precision among its top k genes, from the per-gene tables. The
``random`` ranking is the control: its values are chance.
"""

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from workflow_scripts.names import ALL_CELLS, EXPLAIN_KEYS, NO_EXPLAIN_TRUTH, NULL, OK
from workflow_scripts.registry import GENEX
from workflow_scripts.report.figures.common import CONTROL_COLOUR, dot_grid, entries, message_axes, read_table, style
from workflow_scripts.score.explain_truth import Truth

ROWS = {
    "auprc": "AUPRC",
    "precision_at_n_true": "precision at k\n(k = number of true genes)",
    "false_discoveries": "false discoveries\nper comparison",
}
TOP_GENES = 15  # heatmap columns: gene names stay readable
MAX_K = 100  # precision curves' longest top list
LINES = ["-", "-.", ":"]  # with the markers, curves part in greyscale
TRUE_GENE = dict(marker="o", markersize=3.5, color="black", markeredgecolor="white", markeredgewidth=0.6)


def draw(explain: str):
    """One row per metric, one column per dataset; one marker per covariate."""
    table = read_table(explain).assign(series=lambda t: t["category"])
    series = list(dict.fromkeys(table.loc[table["status"] == OK, "series"]))
    title = "Recovery of the simulated covariate genes by each explanation (random: the chance control)"
    return dot_grid(table, ROWS, series, "covariate", title, ceiling=None)


def _ranked_comparisons(table: pd.DataFrame, truth) -> list[tuple]:
    """The overall comparisons of one method's table that ``explain_scores`` scores: (covariate,
    level, rows in its ranking order, their truth or None without simulated factors)."""
    index = pd.Index(truth.var.index.astype(str))
    out = []
    for (covariate, level, cell_type), rows in table.groupby(EXPLAIN_KEYS, sort=False):
        if cell_type == ALL_CELLS and truth.scored(covariate, level, cell_type):
            rows = rows.iloc[np.argsort(-rows["score"].to_numpy(float), kind="stable")]
            genes = truth.genes(covariate, level, cell_type)
            out.append((covariate, level, rows, None if genes is None else genes[index.get_indexer(rows["gene"])]))
    return out


def _heatmap(ax, comparisons: list[tuple]) -> None:
    """GENEX's top genes per comparison, shaded by score relative to the row's top gene (rows
    of different scales compare), a dot on each gene the simulation tied to the level."""
    top = np.array([rows["score"].to_numpy(float)[:TOP_GENES] / rows["score"].max() for _, _, rows, _ in comparisons])
    image = ax.imshow(top, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    labels = []
    for y, (covariate, level, rows, genes) in enumerate(comparisons):
        for x, gene in enumerate(rows["gene"].iloc[:TOP_GENES]):
            ax.text(x, y + 0.15, gene, ha="center", va="center", fontsize=6, color="white" if top[y, x] > 0.6 else "black")
        hits = np.flatnonzero(genes[:TOP_GENES]) if genes is not None else []
        ax.plot(hits, np.full(len(hits), y - 0.2), linestyle="none", **TRUE_GENE)
        labels.append(f"{covariate} {level}\n({'no truth' if genes is None else f'{genes.sum()} true genes'})")
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xticks(range(top.shape[1]), range(1, top.shape[1] + 1), fontsize=7)
    ax.set(xlabel="rank", title=f"{GENEX}: top {TOP_GENES} genes per level (overall)")
    ax.figure.colorbar(image, ax=ax, location="bottom", shrink=0.4, aspect=30, label="score / the row's top score")
    dot = Line2D([], [], linestyle="none", label="simulated true gene (none: not true)", **TRUE_GENE)
    ax.legend(handles=[dot], loc="lower right", bbox_to_anchor=(1, 1), fontsize=7, frameon=False)


def _precision_curves(tables: dict[str, pd.DataFrame], truth) -> dict[str, dict[str, np.ndarray]]:
    """{covariate: {method: precision among its top k, k = 1..MAX_K}}, the mean over the
    covariate's comparisons that have true and false genes (where precision means something)."""
    runs = {}
    for method, table in tables.items():
        for covariate, _, _, genes in _ranked_comparisons(table, truth):
            if genes is not None and 0 < genes.sum() < genes.size:
                k = np.arange(1, min(MAX_K, genes.size) + 1)
                runs.setdefault(covariate, {}).setdefault(method, []).append(np.cumsum(genes[: k.size]) / k)
    return {c: {m: np.mean(r, axis=0) for m, r in by_method.items()} for c, by_method in runs.items()}


def _no_curve_note(truth, covariate: str) -> str:
    """Why a covariate has no precision curve, in ``explain_scores``' words."""
    levels = [level for level in truth.levels[covariate] if truth.scored(covariate, level, ALL_CELLS)]
    genes = [g for g in (truth.genes(covariate, level, ALL_CELLS) for level in levels) if g is not None]
    if not genes:
        return NO_EXPLAIN_TRUTH
    return NULL if not any(g.any() for g in genes) else "not applicable: no ranking with true and false genes"


def draw_genes(genes: list[str], data: str, scores: str):
    """GENEX's top genes marked against the simulated truth (left) and every explanation
    method's precision among its top k genes per covariate (right; random: chance)."""
    truth = Truth(ad.read_h5ad(data))
    tables = {
        t["method"].iloc[0]: t for t in (pd.read_csv(p, dtype={k: str for k in EXPLAIN_KEYS}) for p in genes) if not t.empty
    }
    table = read_table(scores)
    found = entries(table, keys=["method"])
    genex = _ranked_comparisons(tables[GENEX], truth) if GENEX in tables else []
    covariates = [truth.batch_key, truth.label_key, *truth.covariates]
    n_rows = -(-len(covariates) // 2)
    fig = plt.figure(figsize=(18, max(2.5 + 0.5 * len(genex), 2 + 2.6 * n_rows)), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[1.5, 1])
    ax = left.subplots()
    if genex:
        _heatmap(ax, genex)
    else:
        failed = found.loc[found["method"] == GENEX, "label"]
        message_axes(ax, failed.iloc[0] if not failed.empty else f"no {GENEX} explanations")
    curves = _precision_curves(tables, truth)
    axes = right.subplots(n_rows, 2, squeeze=False).ravel()  # not shared: a note's panel drops its ticks
    for ax, covariate in zip(axes, covariates, strict=False):
        ax.set_title(truth.category(covariate), fontsize=9)
        if covariate not in curves:
            message_axes(ax, _no_curve_note(truth, covariate).replace(": ", ":\n"))
            continue
        for i, entry in enumerate(found.itertuples()):
            if entry.method in curves[covariate]:
                curve = curves[covariate][entry.method]
                k = np.arange(1, curve.size + 1)
                ax.plot(k, curve, markevery=(i % 10, 10), markersize=4, linewidth=1, **_look(i, entry.role))
        ax.set(xlim=(0, MAX_K + 1), ylim=(0, 1.02))
        ax.grid(color="0.92")
    for j, ax in enumerate(axes):
        if j >= len(covariates):
            ax.set_visible(False)
        elif j + 2 >= len(covariates):  # the lowest panel of its column
            ax.set_xlabel("k (the method's top k genes)", fontsize=9)
    handles = [
        Line2D([], [], label=e.label.replace("\n", ": "), **(dict(linestyle="none") if e.failed else _look(i, e.role)))
        for i, e in enumerate(found.itertuples())
    ]
    right.supylabel("precision among the top k (mean over levels)", fontsize=9)
    right.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=7)
    fig.suptitle(f"{table['dataset'].iloc[0]}: the genes each explanation ties to each covariate level", x=0.01, ha="left")
    return fig


def _look(i: int, role: str) -> dict:
    """A method's colour, marker and line style (three styles, so curves part in greyscale);
    the control dashed grey, without markers."""
    if role == "control":
        return dict(color=CONTROL_COLOUR, linestyle="--")
    return dict(**style(i), linestyle=LINES[i % len(LINES)])

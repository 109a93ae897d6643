"""The benchmark's figures, each drawn by one rule (``rules/report.smk``) from the score tables
(also those the score stage writes for a figure: DE curves, explanations' precision at k and top
genes, the paper comparison and its claims) or, for UMAPs and expression scatters, from the
per-cell files. Figures compute no metric.

:data:`FIGURES` names every figure with its title and the one-line caption the report prints
under it; :func:`make_figure` draws one and writes its PNG and PDF. A figure that is drawn per
dataset is written as ``<key>_<dataset>``; one that needs a config key (``needs``) is drawn only
when the config sets it.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from workflow_scripts.report.figures import cost, de, explain, mixing, paper, scib_table, sweep, truth, umap
from workflow_scripts.report.figures.common import save


@dataclass(frozen=True)
class Figure:
    title: str
    caption: str  # how to read it
    draw: Callable  # keyword arguments: the rule's named inputs and params.options; returns a Figure
    per_dataset: bool = False
    needs: str | None = None  # a config key without which the figure is not drawn


FIGURES = {
    "scib_table": Figure(
        "scIB metrics",
        "Rows: methods given the labels ([labels]), then label-free methods, each sorted by overall score, then the "
        "controls (grey italics, not ranked); circles: each metric "
        "(0–1, higher is better, blank = not applicable); bars: batch, bio and overall scores.",
        scib_table.draw,
    ),
    "umap": Figure(
        "UMAP of every output",
        "Each method's representation with the higher scIB overall score (its embedding or the PCA of its corrected "
        "values, named in the title); left of each pair coloured by batch (well mixed is good), right by cell type "
        "(separate clusters are good).",
        umap.draw,
        per_dataset=True,
    ),
    "de_recovery": Figure(
        "DE recovery",
        "Per dataset (columns): AUPRC, F1 and false discoveries (rows) of each method's Wilcoxon DE on corrected values "
        "and of the DE workflows on raw counts; one marker per comparison type; dashed lines: the truth control.",
        de.draw_recovery,
    ),
    "de_pr_curves": Figure(
        "Precision–recall of true DE genes",
        "One cell type against the rest and, within it, each covariate level against its reference; a curve further "
        "up and right finds the true DE genes earlier in its ranking (AP in the legend); dashed: controls.",
        de.draw_pr_curves,
        per_dataset=True,
    ),
    "truth_distance": Figure(
        "Distance to the batch-free truth",
        "Per dataset (rows), each metric (columns) of corrected against true log1p CP10k expression: distances lower "
        "is better, fidelities higher is better; dashed: the truth control.",
        truth.draw_distance,
    ),
    "truth_genes": Figure(
        "Corrected vs true expression",
        "Cells of the genes with the largest simulated batch factors (rows), per method (columns): a correction that "
        "removed the batch puts every batch's cells on the dashed diagonal.",
        truth.draw_genes,
        per_dataset=True,
    ),
    "explain": Figure(
        "Explanations",
        "How well each explanation method ranks the genes the simulation tied to each covariate (one marker each): "
        "AUPRC, precision among its top k and false discoveries of its calls (rows) per dataset (columns); random: chance.",
        explain.draw,
    ),
    "explain_genes": Figure(
        "Genes behind each covariate",
        "Left: GENEX's top genes per covariate level (all cells), shaded by score relative to the row's top gene, a dot "
        "on each gene the simulation tied to the level; right: each method's precision among its top k genes, mean "
        "over the covariate's levels (dashed grey: random, chance).",
        explain.draw_genes,
        per_dataset=True,
    ),
    "mixing": Figure(
        "Does mixing predict DE fidelity?",
        "Each point is a method on a dataset: scIB overall score of its corrected values against the AUPRC of DE on "
        "them, per comparison type; Spearman ρ over methods (hollow: controls, left out).",
        mixing.draw,
    ),
    "cost": Figure(
        "Cost",
        "Wall time summed over datasets, stacked by stage, and peak memory per stage, of each method's jobs; failed "
        "methods say so.",
        cost.draw,
    ),
    "paper": Figure(
        "Published values beside ours",
        "How to read: filled = measured here, hollow = published (cited under the figure), one row per method; "
        "'not run here' = the paper's method only, 'failed' = ours failed; the text below says which orderings reproduce.",
        paper.draw,
        needs="published",
    ),
    "sweep": Figure(
        "Scores across seeds and the sweep",
        "Each method's score (rows: scIB overall, mixing, biology kept, distance to the truth) against the swept "
        "simulation parameter, per dataset (columns): the mean over seeds, the band its 95 % t-interval (Student's t); "
        "where a line drops, the method breaks. Dashed grey: controls.",
        sweep.draw,
        needs="seeds",  # or sweep: drawn whenever the config replicates
    ),
}


def stem(key: str, dataset: str | None = None) -> str:
    """File name (without extension) of a figure."""
    return key if dataset is None else f"{key}_{dataset}"


def parse_stem(name: str) -> tuple[str, str | None]:
    """(key, dataset or None) of a figure's file name, as :func:`stem` made it."""
    if name in FIGURES:
        return name, None
    key = max((k for k in FIGURES if FIGURES[k].per_dataset and name.startswith(f"{k}_")), key=len, default=None)
    if key is None:
        raise ValueError(f"'{name}' is not a figure of {list(FIGURES)}")
    return key, name[len(key) + 1 :]


def make_figure(key: str, png: str | Path, pdf: str | Path, **inputs) -> None:
    """Draw figure ``key`` from ``inputs`` (its draw function's arguments) and save it."""
    save(FIGURES[key].draw(**inputs), png, pdf)

"""The benchmark's report: one self-contained HTML page (figures embedded as base64 PNG, no
external scripts, styles or fonts) with the config, the datasets, every figure with a caption
saying how to read it, the score tables and the software versions. With a config's
``published:`` values, also those values (cited, apart from ours) and which of their claims
reproduce (:mod:`workflow_scripts.report.figures.paper`)."""

import base64
import html
import importlib.metadata
import os
import platform
from collections.abc import Iterable, Mapping
from pathlib import Path

import anndata as ad
import h5py
import pandas as pd
import yaml

from workflow_scripts.names import DATASET_UNS, METHOD_UNS, SUBSAMPLED, TRUTH_MEANS
from workflow_scripts.report.cost import job_costs
from workflow_scripts.report.figures import FIGURES, parse_stem
from workflow_scripts.report.figures.common import read_table
from workflow_scripts.report.headline import headline

PACKAGES = {  # what the report lists: {name shown: distribution}
    "genex_core": "genex-benchmark",
    "scanpy": "scanpy",
    "anndata": "anndata",
    "scvi-tools": "scvi-tools",
    "torch": "torch",
    "harmonypy": "harmonypy",
    "scib": "scib",
    "scib-metrics": "scib-metrics",
    "snakemake": "snakemake",
    "matplotlib": "matplotlib",
    "plottable": "plottable",
}
STYLE = """
body { font-family: sans-serif; max-width: 1400px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { border-bottom: 2px solid #0072B2; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.95em; color: #333; margin-top: 0.4em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; } th { background: #f0f0f0; }
td:first-child, th:first-child { text-align: left; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 0.85em; }
nav a { margin-right: 1em; }
"""


class _PlainDumper(yaml.SafeDumper):
    """YAML without anchors and aliases (the config repeats shared lists): the file as a user writes it."""

    def ignore_aliases(self, data):
        return True


def software_versions() -> pd.DataFrame:
    """Python and the packages of :data:`PACKAGES` in the environment writing the report."""
    rows = [("python", platform.python_version())]
    for name, distribution in PACKAGES.items():
        try:
            rows.append((name, importlib.metadata.version(distribution)))
        except importlib.metadata.PackageNotFoundError:
            rows.append((name, "not in the report's environment"))
    return pd.DataFrame(rows, columns=["package", "version"])


def method_versions(integrated: Iterable[str | Path]) -> pd.DataFrame:
    """Version of the library that ran each method, as its integration job recorded it."""
    rows = {}
    for path in integrated:
        with h5py.File(path, "r") as f:
            info = ad.io.read_elem(f["uns"][METHOD_UNS])
        rows[str(info["name"])] = str(info["version"])
    return pd.DataFrame(sorted(rows.items()), columns=["method", "library version"])


def dataset_summary(data: Iterable[str | Path]) -> pd.DataFrame:
    """Cells, genes, batches, cell types, covariates and truth of each dataset file."""
    rows = []
    for path in data:
        adata = ad.read_h5ad(path, backed="r")
        keys = adata.uns[DATASET_UNS]
        obs = adata.obs
        rows.append(
            {
                "dataset": keys["name"],
                "source": keys.get("source", ""),
                "cells": adata.n_obs,
                "genes": adata.n_vars,
                "batches": obs[keys["batch_key"]].nunique(),
                "cell types": obs[keys["label_key"]].nunique(),
                "covariates": ", ".join(f"{c} ({obs[c].nunique()} levels)" for c in keys.get("covariates", [])) or "none",
                "batch-free truth": "yes" if TRUTH_MEANS in adata.layers else "no",
            }
        )
        adata.file.close()
    return pd.DataFrame(rows)


def score_pivot(table: pd.DataFrame, index: list[str]) -> pd.DataFrame:
    """A tidy score table as rows ``index`` x one column per metric, with the status shown."""
    wide = table.pivot_table(index=index, columns="metric", values="value", aggfunc="first", dropna=False, sort=False)
    status = table.groupby(index, sort=False)["status"].first()
    wide = wide.reindex(status.index).assign(status=status).reset_index()
    wide.columns.name = None
    return wide


def table_html(table: pd.DataFrame) -> str:
    return table.to_html(index=False, na_rep="–", float_format=lambda v: f"{v:.3f}", border=0)


def figure_html(png: str | Path, page_dir: str | Path) -> str:
    """A figure embedded as base64 PNG, its caption, and a link (relative to the page's
    folder ``page_dir``) to its PDF."""
    key, dataset = parse_stem(Path(png).stem)
    spec = FIGURES[key]
    title = spec.title + (f" — {dataset}" if dataset else "")
    data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    pdf = os.path.relpath(Path(png).with_suffix(".pdf"), page_dir)
    return (
        f'<figure id="{html.escape(Path(png).stem)}"><h3>{html.escape(title)}</h3>'
        f'<img alt="{html.escape(title)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(spec.caption)} "
        f'<a href="{html.escape(pdf)}">PDF</a></figcaption></figure>'
    )


def tables_html(scib: str, truth: str, de: Iterable[str], explain: str, results: str | Path) -> str:
    """The score tables (raw totals, truth, DE, explanations) and the job costs, as HTML tables."""
    scib_table = read_table(scib)
    scib_table = scib_table[(scib_table["category"] == "total") & (scib_table["scaling"] == "raw")]
    truth_table = read_table(truth)
    truth_table = truth_table[truth_table["category"].isin(["distance", "fidelity"])]
    de_table = pd.concat([read_table(p) for p in de], ignore_index=True)
    explain_table = read_table(explain)
    costs = job_costs(results)
    parts = [
        (
            "scIB scores (raw; totals per representation)",
            score_pivot(scib_table, ["dataset", "method", "role", "uses_labels", "representation"]),
        ),
        ("Distance to the batch-free truth", score_pivot(truth_table, ["dataset", "method", "role", "uses_labels"])),
        (
            "DE recovery (representation: the DE workflow)",
            score_pivot(de_table, ["dataset", "method", "role", "uses_labels", "representation", "category"]),
        ),
        (
            "Explanations (method: the explanation method)",
            score_pivot(explain_table, ["dataset", "method", "role", "representation", "category"]),
        ),
    ]
    shown = "".join(f"<h3>{html.escape(title)}</h3>{table_html(t)}" for title, t in parts)
    shown += subsampled_html(read_table(scib))
    summary = "<summary>Seconds and peak MB of every job (click to show)</summary>"
    return f"{shown}<h3>Job costs</h3><details>{summary}{table_html(costs)}</details>"


def subsampled_html(scib: pd.DataFrame) -> str:
    """Which scIB metrics ran on a subsample of the cells, and on how many (their notes), or ''."""
    rows = scib[scib["note"].str.startswith(SUBSAMPLED, na=False)]
    if rows.empty:
        return ""
    shown = rows[["dataset", "method", "representation", "metric", "note"]].drop_duplicates(["dataset", "metric", "note"])
    return f"<h3>Metrics computed on a subsample</h3>{table_html(shown)}"


def published_html(published: str | Path, claims: str | Path) -> str:
    """The published values, cited and kept apart from our tables, and the claims' verdicts."""
    values = pd.read_csv(published)
    verdicts = pd.read_csv(claims)
    counts = verdicts["verdict"].value_counts()
    summary = ", ".join(f"{n} {v}" for v, n in counts.items()) or "no claims to test"
    return (
        f"<h3>Published claims: do they reproduce? ({html.escape(summary)})</h3>{table_html(verdicts)}"
        f"<h3>Published values ({html.escape(Path(published).name)}; the paper's numbers, not ours)</h3>"
        f"{table_html(values)}"
    )


def aspects_html(aspects: str | Path) -> str:
    """The replicates' table (results/aggregate/aspects.csv): each aspect's mean over seeds, its
    95 % t-interval and how stable each method's rank is, per dataset and sweep value."""
    table = read_table(aspects).drop(columns=["metric", "higher_is_better", "sd"])
    intro = (
        "<p>Per dataset and sweep value, each method's mean over seeds with its 95 % Student-t interval; "
        "<code>modal_rank</code>: its most frequent rank within its group, <code>rank_stability</code>: the share "
        "of seeds in which it holds that rank (1 = every seed). All aggregates: <code>results/aggregate/</code>.</p>"
    )
    summary = "<summary>Every aspect, method, dataset and sweep value (click to show)</summary>"
    return f"<h3>Across seeds and the sweep</h3>{intro}<details>{summary}{table_html(table)}</details>"


def verdict_html(verdict: str | Path) -> str:
    """The first screen: per aspect, the best method given the labels, the best label-free one,
    the best explanation method and the controls; then every method's rank within its group."""
    table = read_table(verdict)
    ranks = table.assign(rank=table["rank"].map(lambda r: "" if pd.isna(r) else str(int(r))))
    intro = (
        "<p>Each cell: the best method of its group by the mean of that score over the datasets "
        "(explanations: over every dataset, covariate and scope), with its value. Methods given the "
        "cell-type labels are ranked apart from label-free ones; <code>label_shift</code> is the closed-form "
        "label-using baseline. Controls bracket the methods: <code>truth</code> (the batch-free data) as the "
        "ceiling, <code>unintegrated</code> and <code>shuffled</code> as floors; <code>random</code> is the "
        "explanations' floor.</p>"
    )
    if "n_seeds" in table and table["n_seeds"].max() > 1:
        intro += (
            f"<p>Over {int(table['n_seeds'].max())} seeds: each value is the mean of the per-seed means, in brackets its "
            "95 % Student-t interval over seeds. A method is <em>not distinguishable</em> from its group's best when a "
            "paired t-test over the seeds gives p &ge; 0.05 (<code>p_vs_best</code> in the table below).</p>"
        )
    summary = "<summary>Every method's mean and rank within its group (click to show)</summary>"
    return f"{intro}{table_html(headline(table))}<details>{summary}{table_html(ranks)}</details>"


def build_report(
    figures: Iterable[str | Path],
    config: Mapping,
    data: Iterable[str | Path],
    integrated: Iterable[str | Path],
    scib: str,
    truth: str,
    de: Iterable[str],
    explain: str,
    output: str | Path,
    results: str | Path = "results",
    published: str | Path | None = None,
    claims: str | Path | None = None,
    verdict: str | Path | None = None,
    aspects: str | Path | None = None,
) -> str:
    """Write the report to ``output`` and return its path. ``figures`` are PNGs named as
    :func:`workflow_scripts.report.figures.stem` names them, in the order they are shown. ``published``
    (a config's published values) and ``claims`` (the paper figure's verdicts) come together;
    ``verdict`` (rule ``verdict``'s table) opens the page; ``aspects`` (with seeds or a sweep:
    ``results/aggregate/aspects.csv``) adds the means over seeds to the tables."""
    paper = published_html(published, claims) if published and claims else ""
    config_yaml = html.escape(yaml.dump(dict(config), Dumper=_PlainDumper, sort_keys=False))
    sections = [
        *([("verdict", "Verdict", verdict_html(verdict))] if verdict else []),
        (
            "config",
            "Config",
            f"<details><summary>The config this run used (click to show)</summary><pre>{config_yaml}</pre></details>",
        ),
        ("datasets", "Datasets", table_html(dataset_summary(data))),
        ("figures", "Figures", "".join(figure_html(p, Path(output).parent) for p in figures)),
        ("tables", "Tables", paper + (aspects_html(aspects) if aspects else "") + tables_html(scib, truth, de, explain, results)),
        (
            "software",
            "Software",
            table_html(software_versions())
            + "<h3>Method versions (recorded by each run)</h3>"
            + table_html(method_versions(integrated)),
        ),
    ]
    nav = "".join(f'<a href="#{key}">{title}</a>' for key, title, _ in sections)
    body = "".join(f'<section id="{key}"><h2>{title}</h2>{content}</section>' for key, title, content in sections)
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>GENEX benchmark report</title>'
        f"<style>{STYLE}</style></head><body><h1>GENEX benchmark report</h1><nav>{nav}</nav>{body}</body></html>"
    )
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    Path(output).write_text(page, encoding="utf-8")
    return str(output)


if __name__ == "__main__":
    from workflow_scripts.rule_log import log_to_file

    smk = snakemake  # noqa: F821 (injected by Snakemake's script: directive)
    with log_to_file(smk.log[0]):
        build_report(
            smk.input.figures,
            smk.config,
            smk.input.data,
            smk.input.integrated,
            smk.input.scib,
            smk.input.truth,
            smk.input.de,
            smk.input.explain,
            smk.output[0],
            smk.params.results,
            # named lists, [] unless the config names published values
            next(iter(smk.input.published), None),
            next(iter(smk.input.claims), None),
            smk.input.verdict,
            next(iter(smk.input.aspects), None),  # [] unless the config replicates
        )

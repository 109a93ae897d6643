"""The HTML report embeds every figure with its caption, the tables (failures visible), the
config, the datasets and the versions, loads nothing from outside; the rules feed it every
figure rule's output (the paper figure's only when the config names published values)."""

import html
import re
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest
import yaml
from test_figures import DATASETS, paper_inputs, results  # noqa: F401 (the synthetic results fixture)

from workflow_scripts.report.figures import FIGURES, stem
from workflow_scripts.report.page import build_report
from workflow_scripts.score.table import read_score_table
from workflow_scripts.score.verdict import verdict

REPO = Path(__file__).resolve().parents[2]


def dummy_figures(folder: Path) -> list[Path]:
    """A small PNG and PDF per figure (and per dataset where the figure is per dataset)."""
    folder.mkdir(parents=True, exist_ok=True)
    pngs = []
    for key, spec in FIGURES.items():
        for dataset in DATASETS if spec.per_dataset else [None]:
            fig = plt.figure(figsize=(1, 1))
            for ext in ("png", "pdf"):
                fig.savefig(folder / f"{stem(key, dataset)}.{ext}")
            plt.close(fig)
            pngs.append(folder / f"{stem(key, dataset)}.png")
    return pngs


def test_report_embeds_every_figure_and_table(results, tmp_path):  # noqa: F811
    pngs = dummy_figures(tmp_path / "figures")
    config = {"datasets": {d: {"simulate": {"seed": 1}} for d in DATASETS}, "methods": {"genex": {"max_epochs": 3}}}
    tables = {name: read_score_table(results / f"{name}_summary.csv") for name in ("scib", "truth", "explain")}
    verdict(**tables).to_csv(tmp_path / "verdict.csv", index=False)
    output = build_report(
        pngs,
        config,
        [results / d / "data.h5ad" for d in DATASETS],
        sorted(results.glob("*/integrated/*.h5ad")),
        results / "scib_summary.csv",
        results / "truth_summary.csv",
        [results / d / "scores" / "de.csv" for d in DATASETS],
        results / "explain_summary.csv",
        tmp_path / "report.html",
        results,
        verdict=tmp_path / "verdict.csv",
    )
    page = Path(output).read_text()
    # the verdict opens the page: the best of each group per aspect, before any figure
    assert page.index('id="verdict"') < page.index("data:image/png")
    assert "best, uses labels" in page and "best, label-free" in page and "<td>genex (" in page
    assert page.count("data:image/png;base64,") == len(pngs)
    for png in pngs:
        assert f'id="{png.stem}"' in page and f'href="figures/{png.stem}.pdf"' in page
    for spec in FIGURES.values():
        assert html.escape(spec.caption) in page
    assert "max_epochs: 3" in page  # the config
    assert "<td>d2</td>" in page and "<td>60</td>" in page  # dataset summary: 60 cells
    assert page.count("failed: out of memory") >= 4  # scIB, truth, DE and explanation tables
    for package in ("python", "genex_core", "scanpy", "anndata", "scvi-tools", "torch", "harmonypy", "scib", "snakemake"):
        assert f"<td>{package}</td>" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "the report must render offline"


@pytest.mark.parametrize("published", [False, True], ids=["default", "published"])
def test_report_takes_every_figure_of_the_figure_table(tmp_path, published):
    """A dry run of the report on a tiny config draws every figure of FIGURES (per dataset where
    it is drawn per dataset) in the two figure rules; the paper figure only when the config names
    published values (a path relative to the repository)."""
    config = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
    if published:
        config["published"] = "config/published/genex_paper.csv"
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--dry-run", "--cores", "1",
         "--configfile", str(tmp_path / "c.yaml"), "--directory", str(tmp_path), "results/report.html"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"^(local)?rule figures:", run.stdout, flags=re.MULTILINE)
    assert re.search(r"^(local)?rule figures_dataset:", run.stdout, flags=re.MULTILINE)
    for key, spec in FIGURES.items():
        drawn = not spec.needs or spec.needs in config
        for dataset in config["datasets"] if spec.per_dataset else [None]:
            assert (f"results/figures/{stem(key, dataset)}.png" in run.stdout) == drawn, key


def test_report_shows_the_published_values_apart_with_their_claims(results, tmp_path):  # noqa: F811
    from workflow_scripts.score import paper

    inputs = paper_inputs(results)
    published = paper.read_published(inputs["published"])
    ours, failures, _, order, _ = paper.measured(inputs["scib"], inputs["truth"], inputs["de"], inputs["genes"])
    paper.claims(paper.comparison(published, ours, failures, order)).to_csv(tmp_path / "claims.csv", index=False)
    pngs = dummy_figures(tmp_path / "figures")
    output = build_report(
        pngs,
        {"published": str(inputs["published"])},
        [results / d / "data.h5ad" for d in DATASETS],
        sorted(results.glob("*/integrated/*.h5ad")),
        inputs["scib"],
        inputs["truth"],
        inputs["de"],
        results / "explain_summary.csv",
        tmp_path / "report.html",
        results,
        published=inputs["published"],
        claims=tmp_path / "claims.csv",
    )
    page = Path(output).read_text()
    assert 'id="paper"' in page and html.escape(FIGURES["paper"].caption) in page
    assert "How to read: filled = measured here, hollow = published" in FIGURES["paper"].caption
    assert "Published claims: do they reproduce?" in page and "not testable" in page
    assert "the paper's numbers, not ours" in page and "A paper, its table 1" in page  # cited, apart from ours


def test_results_doc_is_written_from_the_tables(results):  # noqa: F811
    from workflow_scripts.report.results_doc import results_markdown

    tables = {name: read_score_table(results / f"{name}_summary.csv") for name in ("scib", "truth", "explain")}
    verdict(**tables).to_csv(results / "verdict.csv", index=False)  # the verdict rule's output
    page = results_markdown(results)
    assert page.startswith("# Results of the default benchmark") and "## Verdict" in page
    assert "genex [labels]" in page and "failed: out of memory" in page  # label marks and failures stay visible
    assert "## Time per stage" in page


def test_report_says_which_metrics_ran_on_a_subsample():
    from workflow_scripts.report.page import subsampled_html

    rows = pd.DataFrame({
        "dataset": ["large", "large"], "method": ["scvi", "scvi"], "representation": ["embedding"] * 2,
        "metric": ["asw_batch", "nmi"], "note": ["subsampled: 20,000 of 100,000 cells (quadratic in cells)", ""],
    })  # fmt: skip
    shown = subsampled_html(rows)
    assert "asw_batch" in shown and "20,000 of 100,000" in shown and "nmi" not in shown
    assert subsampled_html(rows.iloc[1:]) == ""

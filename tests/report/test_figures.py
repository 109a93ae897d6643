"""Every figure, drawn from tiny synthetic tables and files: it writes a PNG and a PDF, and a
method that failed (genex on dataset d2) shows as failed instead of disappearing. The tables
the score stage computes for the figures (DE curves, explanations' precision at k, the paper
comparison) are written from the synthetic per-gene tables by the score modules themselves."""

import itertools

import anndata as ad
import matplotlib.text
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from workflow_scripts.report.figures import FIGURES, parse_stem, stem
from workflow_scripts.report.figures.common import save

COLUMNS = ["dataset", "method", "role", "representation", "category", "metric", "scaling", "value", "note", "status"]
DATASETS = ["d1", "d2"]
METHODS = {"genex": "method", "harmony": "method", "combat": "method", "truth": "control", "unintegrated": "control"}
EXPRESSION = ["genex", "combat", "truth", "unintegrated"]
FAILED = ("d2", "genex")
REASON = "failed: out of memory"
N_CELLS, N_GENES = 60, 30
EXPLAINERS = ["genex", "mean_difference", "random"]


def _marked(table: pd.DataFrame) -> pd.DataFrame:
    """The ``uses_labels`` column every integration score table has (GENEX is given labels here)."""
    table.insert(table.columns.get_loc("role") + 1, "uses_labels", table["method"].eq("genex"))
    return table


def _status(dataset, method):
    return REASON if (dataset, method) == FAILED else "ok"


def _value(rng, dataset, method):
    return np.nan if (dataset, method) == FAILED else rng.uniform(0.2, 1.0)


def scib_table(rng) -> pd.DataFrame:
    rows = []
    for dataset, (method, role) in itertools.product(DATASETS, METHODS.items()):
        reps = ["embedding"] + (["corrected_pca"] if method in EXPRESSION and (dataset, method) != FAILED else [])
        for rep in reps:
            metrics = [("batch", "asw_batch"), ("batch", "kbet"), ("bio", "nmi"), ("bio", "isolated_label_f1")]
            metrics += [("total", "batch_score"), ("total", "bio_score"), ("total", "overall")]
            for category, metric in metrics:
                value, note = _value(rng, dataset, method), ""
                if metric == "isolated_label_f1":
                    value, note = np.nan, "no isolated label: every label is in all 2 batches"
                rows.append((dataset, method, role, rep, category, metric, "raw", value, note, _status(dataset, method)))
    return _marked(pd.DataFrame(rows, columns=COLUMNS))


def truth_table(rng) -> pd.DataFrame:
    metrics = [("distance", "mse"), ("distance", "wasserstein"), ("fidelity", "pearson_gene")]
    rows = [
        (d, m, METHODS[m], "corrected", c, metric, "raw", _value(rng, d, m), "", _status(d, m))
        for d, m, (c, metric) in itertools.product(DATASETS, EXPRESSION, metrics)
    ]
    return _marked(pd.DataFrame(rows, columns=COLUMNS))


def de_table(rng, dataset) -> pd.DataFrame:
    rows = []
    entries = [(m, "wilcoxon") for m in EXPRESSION] + [("unintegrated", "ols_batch")]
    categories = ["cell_type_vs_rest", "cell_type_pair", "covariate:condition"]
    for (method, workflow), category in itertools.product(entries, categories):
        if (dataset, method) == FAILED:
            continue
        for metric in ["auroc", "auprc", "f1", "false_discoveries"] + (["f1_paper"] if category == "cell_type_vs_rest" else []):
            value, note = rng.uniform(0, 1), "mean of 2 of 2 comparisons"
            if dataset == "d2" and category == "covariate:condition" and metric in ("auroc", "auprc"):
                value, note = np.nan, "not applicable: null, no simulated effect"
            rows.append((dataset, method, METHODS[method], workflow, category, metric, "raw", value, note, "ok"))
    if dataset == FAILED[0]:
        rows += [
            (dataset, FAILED[1], "method", "wilcoxon", "all", m, "raw", np.nan, "", REASON)
            for m in ("auprc", "f1", "false_discoveries")
        ]
    return _marked(pd.DataFrame(rows, columns=COLUMNS))


def gene_table(rng, dataset, method, workflow) -> pd.DataFrame:
    comparisons = [("cell_type", "A", "rest", "all"), ("cell_type", "B", "rest", "all"), ("condition", "case", "control", "A")]
    rows = []
    for covariate, level, reference, cell_type in comparisons:
        truth = rng.random(N_GENES) < 0.3
        score = truth * 2 + rng.normal(size=N_GENES)
        for g in range(N_GENES):
            rows.append(
                (
                    dataset,
                    method,
                    workflow,
                    covariate,
                    level,
                    reference,
                    cell_type,
                    f"g{g}",
                    score[g],
                    0.5,
                    0.01,
                    bool(score[g] > 1),
                    float(score[g] > 1.5) if reference == "rest" else np.nan,  # the paper's protocol: vs rest only
                    float(truth[g]),
                )
            )
    columns = [
        "dataset",
        "method",
        "workflow",
        "covariate",
        "level",
        "reference",
        "cell_type",
        "gene",
        "score",
        "lfc",
        "pval_adj",
        "significant",
        "significant_paper",
        "is_true",
    ]
    return pd.DataFrame(rows, columns=columns)


def dataset_file(rng, name) -> ad.AnnData:
    obs = pd.DataFrame(
        {
            "batch": pd.Categorical(np.repeat(["B1", "B2"], N_CELLS // 2)),
            "cell_type": pd.Categorical(np.tile(["A", "B", "C"], N_CELLS // 3)),
            "condition": pd.Categorical(np.tile(["control", "case"], N_CELLS // 2)),
        },
        index=[f"c{i}" for i in range(N_CELLS)],
    )
    var = pd.DataFrame(
        {"batch_factor_B1": rng.lognormal(0, 0.3, N_GENES), "batch_factor_B2": rng.lognormal(0, 0.3, N_GENES)},
        index=[f"g{g}" for g in range(N_GENES)],
    )
    means = rng.gamma(2, 2, (N_CELLS, N_GENES)).astype(np.float32)
    adata = ad.AnnData(X=sp.csr_matrix(rng.poisson(means).astype(np.float32)), obs=obs, var=var)
    adata.layers["batchfree_means"] = means
    adata.uns["dataset"] = {
        "name": name,
        "batch_key": "batch",
        "label_key": "cell_type",
        "covariates": ["condition"],
        "source": "simulate",
    }
    return adata


def integrated_file(rng, data: ad.AnnData, method: str) -> ad.AnnData:
    out = ad.AnnData(obs=data.obs.copy(), var=data.var.copy())
    out.obsm["X_emb"] = rng.normal(size=(N_CELLS, 5)).astype(np.float32)
    if method in EXPRESSION:
        out.layers["corrected"] = np.log1p(rng.gamma(2, 2, (N_CELLS, N_GENES))).astype(np.float32)
    out.uns["method"] = {"name": method, "version": "1.0"}
    return out


BENCHMARK = (
    "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n{s}\t0:00:01\t{mb}\t0\t0\t0\t0\t0\t0\t1\n"
)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A results folder in the workflow's layout, with genex failed on d2."""
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("results")
    scib, truth = scib_table(rng), truth_table(rng)
    scib.to_csv(root / "scib_summary.csv", index=False)
    truth.to_csv(root / "truth_summary.csv", index=False)
    for dataset in DATASETS:
        folder = root / dataset
        (folder / "scores").mkdir(parents=True)
        (folder / "integrated").mkdir()
        scib[scib["dataset"] == dataset].to_csv(folder / "scores" / "scib.csv", index=False)
        truth[truth["dataset"] == dataset].to_csv(folder / "scores" / "expression.csv", index=False)
        de_table(rng, dataset).to_csv(folder / "scores" / "de.csv", index=False)
        data = dataset_file(rng, dataset)
        data.write_h5ad(folder / "data.h5ad")
        for method in METHODS:
            if (dataset, method) != FAILED:
                integrated_file(rng, data, method).write_h5ad(folder / "integrated" / f"{method}.h5ad")
        for method, workflow in [(m, "wilcoxon") for m in EXPRESSION] + [("unintegrated", "ols_batch")]:
            if (dataset, method) != FAILED:
                (folder / "de" / workflow).mkdir(parents=True, exist_ok=True)
                gene_table(rng, dataset, method, workflow).to_csv(folder / "de" / workflow / f"{method}.csv.gz", index=False)
        bench = root / "benchmarks" / dataset
        for stage, step in [("integrate", m) for m in METHODS] + [("de", "wilcoxon_combat"), ("de", "ols_batch")]:
            if (dataset, step) != FAILED:
                (bench / stage).mkdir(parents=True, exist_ok=True)
                (bench / stage / f"{step}.tsv").write_text(BENCHMARK.format(s=rng.uniform(1, 50), mb=rng.uniform(100, 900)))
        (bench / "dataset.tsv").write_text(BENCHMARK.format(s=2.0, mb=300))
    explain = explain_table(rng)
    explain.to_csv(root / "explain_summary.csv", index=False)
    for dataset in DATASETS:
        explain[explain["dataset"] == dataset].to_csv(root / dataset / "scores" / "explain.csv", index=False)
        (root / dataset / "explain").mkdir()
        for method in EXPLAINERS:
            if (dataset, method) != FAILED:
                table = explain_gene_table(rng, dataset, method)
                table.to_csv(root / dataset / "explain" / f"{method}.csv.gz", index=False)
    published_table().to_csv(root / "published.csv", index=False)
    score_for_figures(root)
    return root


def score_for_figures(root) -> None:
    """What the score rules write for the figures: de_curves, explain_topk and explain_top_genes
    per dataset, the paper comparison and its claims."""
    from workflow_scripts.score.de_curves import de_curves, write_curves
    from workflow_scripts.score.explain_topk import explain_topk
    from workflow_scripts.score.paper import paper_tables
    from workflow_scripts.score.table import write_table

    for dataset in DATASETS:
        folder = root / dataset
        write_curves(de_curves(sorted((folder / "de").glob("*/*.csv.gz"))), folder / "scores" / "de_curves.csv.gz")
        explain_topk(
            folder / "data.h5ad",
            sorted((folder / "explain").glob("*.csv.gz")),
            folder / "scores" / "explain_topk.csv",
            folder / "scores" / "explain_top_genes.csv",
        )
    comparison, claims = paper_tables(**paper_inputs(root))
    write_table(comparison, root / "paper_comparison.csv")
    write_table(claims, root / "paper_claims.csv")


def explain_table(rng) -> pd.DataFrame:
    """As explain_scores writes it: method = the explanation method, random the control."""
    rows = [
        (d, m, "control" if m == "random" else "method", rep, category, metric, "raw", rng.uniform(0, 1), "", "ok")
        for d, m, rep, category, metric in itertools.product(
            DATASETS,
            EXPLAINERS,
            ["overall", "per_cell_type"],
            ["batch", "condition"],
            ["auprc", "precision_at_n_true", "false_discoveries"],
        )
        if (d, m) != FAILED
    ]
    rows += [
        (*FAILED, "method", "overall", "all", metric, "raw", np.nan, "", REASON) for metric in ("auprc", "precision_at_n_true")
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def explain_gene_table(rng, dataset, method) -> pd.DataFrame:
    """As explain_rivals writes it: every gene ranked per (covariate, level, cell type); the
    synthetic data simulate batch effects only, so cell type and condition have no truth."""
    comparisons = [("batch", b, t) for b in ["B1", "B2"] for t in ["all", "A"]]
    comparisons += [("cell_type", t, "all") for t in ["A", "B", "C"]] + [("condition", "case", "all")]
    rows = []
    for covariate, level, cell_type in comparisons:
        score = rng.uniform(0, 1, N_GENES)
        rank = np.argsort(np.argsort(-score, kind="stable")) + 1
        rows += [(dataset, method, covariate, level, cell_type, f"g{g}", score[g], rank[g]) for g in range(N_GENES)]
    return pd.DataFrame(rows, columns=["dataset", "method", "covariate", "level", "cell_type", "gene", "score", "rank"])


def published_table() -> pd.DataFrame:
    """A paper's values: for methods we run (genex, combat, unintegrated) and one we do not (seurat)."""
    rows = [
        ("scib_overall", "genex", "corrected_pca", 0.82),
        ("scib_overall", "combat", "corrected_pca", 0.70),
        ("scib_overall", "seurat", "corrected_pca", 0.66),
        ("scib_batch", "genex", "corrected_pca", 0.84),
        ("f1_paper", "genex", "wilcoxon", 0.29),
        ("f1_paper", "unintegrated", "wilcoxon", 0.06),
        ("mse", "genex", "corrected", 0.53),
        ("wasserstein", "genex", "corrected", 0.05),
        ("wasserstein", "combat", "corrected", 0.04),
    ]
    table = pd.DataFrame(rows, columns=["measure", "method", "representation", "value"])
    return table.assign(source="A paper, its table 1")


def paper_inputs(root, datasets=DATASETS, group="Group1") -> dict:
    """The arguments of the paper_claims score rule (workflow_scripts.score.paper.paper_tables)."""
    return dict(
        published=root / "published.csv",
        scib=root / "scib_summary.csv",
        truth=root / "truth_summary.csv",
        de=[str(root / d / "scores" / "de.csv") for d in datasets],
        genes=[str(p) for d in datasets for p in sorted((root / d / "de" / "wilcoxon").glob("*.csv.gz"))],
        group=group,
    )


def paper_figure_inputs(root) -> dict:
    """The paper figure's arguments, as its rule passes them."""
    return dict(published=root / "published.csv", compared=root / "paper_comparison.csv", verdicts=root / "paper_claims.csv")


def explain_genes_inputs(folder) -> dict:
    """The explain_genes figure's arguments, as its rule passes them."""
    scores = folder / "scores"
    return dict(topk=scores / "explain_topk.csv", top_genes=scores / "explain_top_genes.csv", scores=scores / "explain.csv")


def sweep_inputs(root) -> dict:
    """The sweep figure's arguments: the aggregates of d1 and d2, taken as two seeds of one dataset."""
    from workflow_scripts.score.aggregate import write_aggregates

    replicates = pd.DataFrame(
        {"dataset": DATASETS, "base_dataset": "sim", "sweep_parameter": "", "sweep_value": "", "seed": [0, 1]}
    )
    tables = {t: [str(root / d / "scores" / f"{t}.csv") for d in DATASETS] for t in ("scib", "expression", "de")}
    write_aggregates({**tables, "explain": [str(root / "explain_summary.csv")]}, replicates, root / "aggregate")
    return dict(aspects=root / "aggregate" / "aspects.csv", scib=root / "aggregate" / "scib.csv")


def figure_inputs(key: str, root) -> dict:
    """The draw function's arguments, as the figure's rule passes them (failed dataset d2)."""
    if key == "sweep":
        return sweep_inputs(root)
    d2 = root / "d2"
    produced = [str(p) for p in sorted((d2 / "integrated").glob("*.h5ad"))]
    de = [str(root / d / "scores" / "de.csv") for d in DATASETS]
    return {
        "scib_table": dict(scib=root / "scib_summary.csv"),
        "umap": dict(data=d2 / "data.h5ad", integrated=produced, scores=d2 / "scores" / "scib.csv", seed=0),
        "de_recovery": dict(de=de),
        "de_pr_curves": dict(curves=d2 / "scores" / "de_curves.csv.gz", scores=d2 / "scores" / "de.csv"),
        "truth_distance": dict(truth=root / "truth_summary.csv"),
        "truth_genes": dict(data=d2 / "data.h5ad", integrated=produced, scores=d2 / "scores" / "expression.csv"),
        "explain": dict(explain=root / "explain_summary.csv"),
        "explain_genes": explain_genes_inputs(root / "d2"),
        "mixing": dict(scib=root / "scib_summary.csv", de=de),
        "cost": dict(scib=root / "scib_summary.csv", results=root),
        "paper": paper_figure_inputs(root),
    }[key]


def texts(fig) -> str:
    return "\n".join(t.get_text() for t in fig.findobj(matplotlib.text.Text))


@pytest.mark.parametrize("key", list(FIGURES))
def test_figure_is_written_and_shows_the_failed_method(key, results, tmp_path):
    fig = FIGURES[key].draw(**figure_inputs(key, results))
    shown = texts(fig)
    assert "failed" in shown and "out of memory" in shown, f"{key} hides the failed method"
    assert "control" in shown, f"{key} does not mark the controls"
    save(fig, tmp_path / f"{key}.png", tmp_path / f"{key}.pdf")
    assert (tmp_path / f"{key}.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / f"{key}.pdf").read_bytes().startswith(b"%PDF")


def test_scib_table_ranks_methods_within_label_groups_and_keeps_controls_apart(results):
    from workflow_scripts.report.figures.common import LABELS, read_table
    from workflow_scripts.report.figures.scib_table import wide_scores

    table = read_table(results / "scib_summary.csv")
    wide, groups = wide_scores(table[table["dataset"] == "d1"])
    roles = wide["role"].tolist()
    assert roles == sorted(roles, key=lambda r: r != "method"), "controls must follow the methods"
    methods = wide[wide["role"] == "method"]
    given = methods.index.str.contains(LABELS, regex=False)
    assert given.any() and list(given) == sorted(given, reverse=True), "label-using methods first, marked"
    assert methods[given]["Overall"].is_monotonic_decreasing and methods[~given]["Overall"].is_monotonic_decreasing
    assert groups["asw_batch"] == "Batch correction" and groups["Overall"] == "Aggregate score"


def test_stem_round_trip():
    assert parse_stem(stem("de_pr_curves", "null_covariate")) == ("de_pr_curves", "null_covariate")
    assert parse_stem(stem("de_recovery")) == ("de_recovery", None)
    with pytest.raises(ValueError):
        parse_stem("not_a_figure")


def test_paper_figure_puts_published_values_beside_ours(results, tmp_path):
    from workflow_scripts.report.figures import paper

    fig = paper.draw(**paper_figure_inputs(results))
    shown = texts(fig)
    assert "published" in shown and "measured here" in shown
    assert "not run here" in shown and "seurat" in shown  # the paper's method we do not run
    assert "failed" in shown and "out of memory" in shown  # genex on d2
    assert "A paper, its table 1" in shown  # cited
    assert "mean over cell types vs rest" in shown  # no Group1 in the synthetic tables: says so
    assert "Published claims:" in shown and "reproduce" in shown  # the score stage's claims, under the figure
    save(fig, tmp_path / "paper.png", tmp_path / "paper.pdf")
    assert (tmp_path / "paper.png").stat().st_size > 0 and (tmp_path / "paper.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "paper.pdf").read_bytes().startswith(b"%PDF")


def test_published_table_is_checked(tmp_path):
    from workflow_scripts.score import paper

    bad = published_table().assign(measure="scib_overal")  # a typo
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match="unknown measures"):
        paper.read_published(tmp_path / "bad.csv")
    twice = pd.concat([published_table(), published_table().head(1)])
    twice.to_csv(tmp_path / "twice.csv", index=False)
    with pytest.raises(ValueError, match="more than one value"):
        paper.read_published(tmp_path / "twice.csv")


def test_explain_genes_says_why_a_covariate_has_no_curve(results, tmp_path):
    """A null covariate (factors equal across levels) gets a note, not a crash or an empty panel;
    covariates with simulated effects get curves."""
    from workflow_scripts.names import NO_EXPLAIN_TRUTH, NULL

    data = ad.read_h5ad(results / "d1" / "data.h5ad")
    rng = np.random.default_rng(1)
    for cell_type in ["A", "B", "C"]:
        data.var[f"de_factor_{cell_type}"] = np.where(rng.random(N_GENES) < 0.3, 2.0, 1.0)
    data.var["condition_factor_control"] = data.var["condition_factor_case"] = 1.0
    data.write_h5ad(tmp_path / "data.h5ad")
    from workflow_scripts.score.explain_topk import explain_topk

    tables = sorted((results / "d1" / "explain").glob("*.csv.gz"))
    explain_topk(tmp_path / "data.h5ad", tables, tmp_path / "explain_topk.csv", tmp_path / "explain_top_genes.csv")
    inputs = explain_genes_inputs(results / "d1") | dict(
        topk=tmp_path / "explain_topk.csv", top_genes=tmp_path / "explain_top_genes.csv"
    )
    fig = FIGURES["explain_genes"].draw(**inputs)
    shown = texts(fig)
    assert NULL in shown.replace(":\n", ": ") and NO_EXPLAIN_TRUTH not in shown.replace(":\n", ": ")
    assert "genex" in shown and "true genes" in shown  # GENEX did not fail on d1: its heatmap
    save(fig, tmp_path / "explain_genes.png", tmp_path / "explain_genes.pdf")

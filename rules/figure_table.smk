# The figure table: what each figure of workflow_scripts/report/figures (FIGURES) reads, wiring only.
# The figure rules of rules/report.smk draw from it.

SCORE_TABLES = ["results/scib_summary.csv", "results/truth_summary.csv", "results/explain_summary.csv"]


# {figure: (drawn per dataset, function of the dataset (None across datasets) -> the draw
# function's inputs and options)}; the keys are workflow_scripts.report.figures.FIGURES' (a test checks).
FIGURE_INPUTS = {
    "scib_table": (False, lambda d: dict(scib="results/scib_summary.csv")),
    "umap": (
        True,
        lambda d: dict(
            data=f"results/{d}/data.h5ad",
            integrated=[integrated_output(d, m) for m in ran_methods(d)],
            scores=f"results/{d}/scores/scib.csv",
            seed=REPLICATES[d].seed,
        ),
    ),
    "de_recovery": (False, lambda d: dict(de=expand("results/{dataset}/scores/de.csv", dataset=DATASETS))),
    "de_pr_curves": (
        True,
        lambda d: dict(
            curves=f"results/{d}/scores/de_curves.csv.gz",
            scores=f"results/{d}/scores/de.csv",
        ),
    ),
    "truth_distance": (False, lambda d: dict(truth="results/truth_summary.csv")),
    "truth_genes": (
        True,
        lambda d: dict(
            data=f"results/{d}/data.h5ad",
            integrated=[integrated_output(d, m) for m in ran_methods(d)],
            scores=f"results/{d}/scores/expression.csv",
        ),
    ),
    "explain": (False, lambda d: dict(explain="results/explain_summary.csv")),
    "explain_genes": (
        True,
        lambda d: dict(
            topk=f"results/{d}/scores/explain_topk.csv",
            top_genes=f"results/{d}/scores/explain_top_genes.csv",
            scores=f"results/{d}/scores/explain.csv",
        ),
    ),
    "mixing": (
        False,
        lambda d: dict(scib="results/scib_summary.csv", de=expand("results/{dataset}/scores/de.csv", dataset=DATASETS)),
    ),
    # the cost figure reads every job's benchmark file: it waits for the last tables of each stage
    "cost": (False, lambda d: dict(scib="results/scib_summary.csv", results="results", after=SCORE_TABLES)),
    **(
        {
            "paper": (
                False,
                lambda d: dict(
                    published=PUBLISHED[0],
                    compared="results/paper_comparison.csv",
                    verdicts="results/paper_claims.csv",
                ),
            )
        }
        if PUBLISHED
        else {}
    ),
    # with seeds or a sweep: each method's scores against the swept value, from the aggregates only
    **(
        {"sweep": (False, lambda d: dict(aspects="results/aggregate/aspects.csv", scib="results/aggregate/scib.csv"))}
        if REPLICATED
        else {}
    ),
}
# the draw arguments that name files the figure reads (the rest are options)
FILE_ARGS = {"scib", "data", "integrated", "scores", "de", "truth", "explain", "published", "after", "aspects"}
FILE_ARGS |= {"curves", "topk", "top_genes", "compared", "verdicts"}  # tables the score stage writes for a figure


def figure_stem(key, dataset=None):
    return key if dataset is None else f"{key}_{dataset}"


def figure_keys(per_dataset):
    return [key for key, (drawn_per_dataset, _) in FIGURE_INPUTS.items() if drawn_per_dataset == per_dataset]


def figure_outputs(dataset=None):
    """The PNG and PDF of one dataset's figures ("{dataset}": the wildcard), or of those across datasets."""
    return [
        f"results/figures/{figure_stem(key, dataset)}.{ext}" for key in figure_keys(dataset is not None) for ext in ("png", "pdf")
    ]


def figure_jobs(dataset=None):
    """[(figure, png, pdf, draw arguments)] of one dataset's figures, or of those across datasets."""
    return [
        (key, *(f"results/figures/{figure_stem(key, dataset)}.{ext}" for ext in ("png", "pdf")), FIGURE_INPUTS[key][1](dataset))
        for key in figure_keys(dataset is not None)
    ]


def figure_files(jobs):
    """Every file the figures of ``jobs`` read: the input of their rule."""
    files = []
    for _, _, _, args in jobs:
        for name, value in args.items():
            if name in FILE_ARGS:
                files += value if isinstance(value, list) else [value]
    return list(dict.fromkeys(files))

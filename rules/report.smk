# Stage 4: figures (workflow_scripts/report/figures/) -> results/figures/<name>.png|pdf, and the
# self-contained HTML report -> results/report.html (workflow_scripts/report/page.py).
# Every figure is one row of FIGURE_INPUTS (rules/figure_table.smk): its draw function's inputs
# (per dataset for the figures drawn per dataset, named <figure>_<dataset>) and options. Two rules draw them: one job
# per dataset for that dataset's figures, one job for the figures across datasets, so plotting
# libraries load a few times, not once per figure. Per-dataset figures read the outputs of the
# methods that ran (ran_methods in common.smk) and show the failed and skipped ones; with seeds,
# the report shows the per-dataset figures of the first seed (FIGURE_DATASETS).
# With `published:` in the config (config/paper.yaml), figure "paper" puts a paper's published
# values beside ours (compared, and its claims tested, by rule paper_claims in rules/score.smk);
# its path, if relative, is the repository's (so --directory runs find it).


rule figures_dataset:
    input:
        lambda w: figure_files(figure_jobs(w.dataset)),
    output:
        figure_outputs("{dataset}"),
    log:
        "results/logs/{dataset}/figures.log",
    benchmark:
        "results/benchmarks/{dataset}/figures.tsv"
    conda:
        "../envs/report.yaml"
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        jobs=lambda w: figure_jobs(w.dataset),
    script:
        "../workflow_scripts/report/figures/rule.py"


rule figures:
    input:
        figure_files(figure_jobs()),
    output:
        figure_outputs(),
    log:
        "results/logs/report/figures.log",
    benchmark:
        "results/benchmarks/all/report/figures.tsv"
    conda:
        "../envs/report.yaml"
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        jobs=figure_jobs(),
    script:
        "../workflow_scripts/report/figures/rule.py"


rule report:
    input:
        # in FIGURE_INPUTS' order, the figures of each dataset after each figure across datasets
        figures=[
            f"results/figures/{figure_stem(key, d)}.png"
            for key, (per_dataset, _) in FIGURE_INPUTS.items()
            for d in (FIGURE_DATASETS if per_dataset else [None])
        ],
        data=expand("results/{dataset}/data.h5ad", dataset=DATASETS),
        integrated=[integrated_output(d, m) for d in DATASETS for m in ran_methods(d)],
        scib="results/scib_summary.csv",
        truth="results/truth_summary.csv",
        de=expand("results/{dataset}/scores/de.csv", dataset=DATASETS),
        explain="results/explain_summary.csv",
        verdict="results/verdict.csv",
        # with seeds or a sweep: the means over seeds and rank stability (rules/aggregate.smk)
        aspects=["results/aggregate/aspects.csv"] if REPLICATED else [],
        # the published values and which of their claims reproduce, when the config names them
        published=PUBLISHED,
        claims=["results/paper_claims.csv"] if PUBLISHED else [],
    output:
        "results/report.html",
    log:
        "results/logs/report/report.log",
    benchmark:
        "results/benchmarks/all/report/report.tsv"
    conda:
        "../envs/report.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        results=lambda wildcards, input: os.path.dirname(input.scib),
    script:
        "../workflow_scripts/report/page.py"

# Stage 4: figures (one rule each, workflow_scripts/figures/) -> results/figures/<name>.png|pdf,
# and the self-contained HTML report -> results/report.html (workflow_scripts/report.py).
# Per-dataset figures are named <figure>_<dataset>; they read the integrated files and DE tables
# of the methods that did not fail (failed_methods in common.smk), and show the failed ones.
# With `published:` in the config (config/paper.yaml), figure_paper puts a paper's published
# values beside ours; its path, if relative, is the repository's (so --directory runs find it).


rule figure_scib_table:
    input:
        scib="results/scib_summary.csv",
    output:
        png="results/figures/scib_table.png",
        pdf="results/figures/scib_table.pdf",
    params:
        figure="scib_table",
        options={},
    log:
        "results/logs/report/scib_table.log",
    benchmark:
        "results/benchmarks/all/report/scib_table.tsv"
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/figures/rule.py"


rule figure_umap:
    input:
        data="results/{dataset}/data.h5ad",
        integrated=lambda w: [integrated_output(w.dataset, m) for m in ran_methods(w.dataset)],
        scores="results/{dataset}/scores/scib.csv",
    output:
        png="results/figures/umap_{dataset}.png",
        pdf="results/figures/umap_{dataset}.pdf",
    params:
        figure="umap",
        options={"seed": config["seed"]},
    log:
        "results/logs/{dataset}/report/umap.log",
    benchmark:
        "results/benchmarks/{dataset}/report/umap.tsv"
    resources:
        mem_mb=4000,
        runtime=20,
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/figures/rule.py"


rule figure_de_recovery:
    input:
        de=expand("results/{dataset}/scores/de.csv", dataset=DATASETS),
    output:
        png="results/figures/de_recovery.png",
        pdf="results/figures/de_recovery.pdf",
    params:
        figure="de_recovery",
        options={},
    log:
        "results/logs/report/de_recovery.log",
    benchmark:
        "results/benchmarks/all/report/de_recovery.tsv"
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/figures/rule.py"


rule figure_de_pr_curves:
    input:
        genes=lambda w: [
            f"results/{w.dataset}/de/wilcoxon.csv.gz",
            *(f"results/{w.dataset}/de/{workflow}/unintegrated.csv.gz" for workflow in RAW_DE_WORKFLOWS),
        ],
        scores="results/{dataset}/scores/de.csv",
    output:
        png="results/figures/de_pr_curves_{dataset}.png",
        pdf="results/figures/de_pr_curves_{dataset}.pdf",
    params:
        figure="de_pr_curves",
        options={},
    log:
        "results/logs/{dataset}/report/de_pr_curves.log",
    benchmark:
        "results/benchmarks/{dataset}/report/de_pr_curves.tsv"
    resources:
        mem_mb=4000,
        runtime=10,
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/figures/rule.py"


rule figure_truth_distance:
    input:
        truth="results/truth_summary.csv",
    output:
        png="results/figures/truth_distance.png",
        pdf="results/figures/truth_distance.pdf",
    params:
        figure="truth_distance",
        options={},
    log:
        "results/logs/report/truth_distance.log",
    benchmark:
        "results/benchmarks/all/report/truth_distance.tsv"
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/figures/rule.py"


rule figure_truth_genes:
    input:
        data="results/{dataset}/data.h5ad",
        integrated=lambda w: [integrated_output(w.dataset, m) for m in ran_methods(w.dataset)],
        scores="results/{dataset}/scores/expression.csv",
    output:
        png="results/figures/truth_genes_{dataset}.png",
        pdf="results/figures/truth_genes_{dataset}.pdf",
    params:
        figure="truth_genes",
        options={},
    log:
        "results/logs/{dataset}/report/truth_genes.log",
    benchmark:
        "results/benchmarks/{dataset}/report/truth_genes.tsv"
    resources:
        mem_mb=4000,
        runtime=10,
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/figures/rule.py"


rule figure_explain:
    input:
        explain="results/explain_summary.csv",
    output:
        png="results/figures/explain.png",
        pdf="results/figures/explain.pdf",
    params:
        figure="explain",
        options={},
    log:
        "results/logs/report/explain.log",
    benchmark:
        "results/benchmarks/all/report/explain.tsv"
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/figures/rule.py"


rule figure_explain_genes:
    input:
        # GENEX's tables only when its training did not fail (then the scores say why)
        genes=lambda w: [
            f"results/{w.dataset}/explain/{m}.csv.gz"
            for m in EXPLAIN_METHODS
            if not (m in GENEX_EXPLAINS and "genex" in failed_methods(w.dataset))
        ],
        data="results/{dataset}/data.h5ad",
        scores="results/{dataset}/scores/explain.csv",
    output:
        png="results/figures/explain_genes_{dataset}.png",
        pdf="results/figures/explain_genes_{dataset}.pdf",
    params:
        figure="explain_genes",
        options={},
    log:
        "results/logs/{dataset}/report/explain_genes.log",
    benchmark:
        "results/benchmarks/{dataset}/report/explain_genes.tsv"
    resources:
        mem_mb=4000,
        runtime=10,
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/figures/rule.py"


rule figure_mixing:
    input:
        scib="results/scib_summary.csv",
        de=expand("results/{dataset}/scores/de.csv", dataset=DATASETS),
    output:
        png="results/figures/mixing.png",
        pdf="results/figures/mixing.pdf",
    params:
        figure="mixing",
        options={},
    log:
        "results/logs/report/mixing.log",
    benchmark:
        "results/benchmarks/all/report/mixing.tsv"
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/figures/rule.py"


rule figure_cost:
    input:
        # unnamed: the last tables of the other stages, so that all their benchmark files exist
        "results/truth_summary.csv",
        expand("results/{dataset}/scores/de.csv", dataset=DATASETS),
        "results/explain_summary.csv",
        scib="results/scib_summary.csv",
    output:
        png="results/figures/cost.png",
        pdf="results/figures/cost.pdf",
    params:
        figure="cost",
        options=lambda wildcards, input: {"results": os.path.dirname(input.scib)},
    log:
        "results/logs/report/cost.log",
    benchmark:
        "results/benchmarks/all/report/cost.tsv"
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/figures/rule.py"


PUBLISHED = [os.path.join(workflow.basedir, config["published"])] if config.get("published") else []


if PUBLISHED:

    rule figure_paper:
        input:
            published=PUBLISHED[0],
            scib="results/scib_summary.csv",
            truth="results/truth_summary.csv",
            de=expand("results/{dataset}/scores/de.csv", dataset=DATASETS),
            genes=lambda w: [
                f"results/{d}/de/wilcoxon.csv.gz" for d in DATASETS
            ],
        output:
            png="results/figures/paper.png",
            pdf="results/figures/paper.pdf",
            claims="results/figures/paper_claims.csv",
        params:
            figure="paper",
            options=lambda wildcards, output: {"claims_csv": output.claims},
        log:
            "results/logs/report/paper.log",
        benchmark:
            "results/benchmarks/all/report/paper.tsv"
        resources:
            mem_mb=2000,
            runtime=10,
        conda:
            "../envs/report.yaml"
        script:
            "../workflow_scripts/figures/rule.py"


rule report:
    input:
        figures=[
            *([rules.figure_paper.output.png] if PUBLISHED else []),
            rules.figure_scib_table.output.png,
            *expand(rules.figure_umap.output.png, dataset=DATASETS),
            rules.figure_de_recovery.output.png,
            *expand(rules.figure_de_pr_curves.output.png, dataset=DATASETS),
            rules.figure_truth_distance.output.png,
            *expand(rules.figure_truth_genes.output.png, dataset=DATASETS),
            rules.figure_explain.output.png,
            *expand(rules.figure_explain_genes.output.png, dataset=DATASETS),
            rules.figure_mixing.output.png,
            rules.figure_cost.output.png,
        ],
        data=expand("results/{dataset}/data.h5ad", dataset=DATASETS),
        integrated=[integrated_output(d, m) for d in DATASETS for m in ran_methods(d)],
        scib="results/scib_summary.csv",
        truth="results/truth_summary.csv",
        de=expand("results/{dataset}/scores/de.csv", dataset=DATASETS),
        explain="results/explain_summary.csv",
        verdict="results/verdict.csv",
        # the published values and which of their claims reproduce, when the config names them
        published=PUBLISHED,
        claims=[rules.figure_paper.output.claims] if PUBLISHED else [],
    output:
        "results/report.html",
    params:
        results=lambda wildcards, input: os.path.dirname(input.scib),
    log:
        "results/logs/report/report.log",
    benchmark:
        "results/benchmarks/all/report/report.tsv"
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/report.py"

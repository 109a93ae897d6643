# Stage 3: scores of every method's output -> results/<dataset>/scores/*.csv and summaries.


localrules:
    scib_summary,
    truth_summary,
    verdict,  # they stack CSVs: not worth a cluster job


# the published values of a paper to compare with (config `published:`); a relative path is the
# repository's, so --directory runs find it
PUBLISHED = [os.path.join(workflow.basedir, config["published"])] if config.get("published") else []
# One job per dataset and score family: the scorers' imports and warm-up are paid once per
# dataset, not once per method. Methods that failed or were skipped get rows saying why.


rule score_scib:
    input:
        unpack(scored_inputs),
    output:
        "results/{dataset}/scores/scib.csv",
    log:
        "results/logs/{dataset}/score_scib.log",
    benchmark:
        "results/benchmarks/{dataset}/score_scib.tsv"
    conda:
        "../envs/score.yaml"
    threads: 1  # scib metrics ran 2-3x faster per metric on one thread; jobs run side by side
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        skipped=lambda w: skipped_methods(w.dataset),
    script:
        "../workflow_scripts/score/scib.py"


rule scib_summary:
    input:
        expand("results/{dataset}/scores/scib.csv", dataset=DATASETS),
    output:
        "results/scib_summary.csv",
    log:
        "results/logs/scib_summary.log",
    conda:
        "../envs/score.yaml"
    script:
        "../workflow_scripts/score/summary.py"


# Distance of each method's corrected expression to the simulated batch-free truth
# (workflow_scripts/score/expression.py; methods without expression give no rows).


rule score_expression:
    input:
        unpack(scored_inputs),
    output:
        "results/{dataset}/scores/expression.csv",
    log:
        "results/logs/{dataset}/score_expression.log",
    benchmark:
        "results/benchmarks/{dataset}/score_expression.tsv"
    conda:
        "../envs/score.yaml"
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        skipped=lambda w: skipped_methods(w.dataset),
    script:
        "../workflow_scripts/score/expression.py"


rule truth_summary:
    input:
        expand("results/{dataset}/scores/{table}.csv", dataset=DATASETS, table=["expression", "de"]),
    output:
        "results/truth_summary.csv",
    log:
        "results/logs/truth_summary.log",
    conda:
        "../envs/score.yaml"
    script:
        "../workflow_scripts/score/summary.py"


rule verdict:
    # which method wins what, within label-using and label-free methods (the report's first screen)
    input:
        scib="results/scib_summary.csv",
        truth="results/truth_summary.csv",
        explain="results/explain_summary.csv",
    output:
        "results/verdict.csv",
    log:
        "results/logs/verdict.log",
    conda:
        "../envs/score.yaml"
    params:
        replicates=replicate_rows(REPLICATES),  # with seeds: means over seeds, intervals, paired tests
    script:
        "../workflow_scripts/score/verdict.py"


# What the per-dataset DE and explanation figures show, computed here so figures only draw:
# precision-recall curves of the DE rankings (workflow_scripts/score/de_curves.py) and each
# explanation method's precision among its top k genes with GENEX's top genes marked against
# the truth (workflow_scripts/score/explain_topk.py).


rule score_de_curves:
    input:
        genes=lambda w: [f"results/{w.dataset}/de/wilcoxon.csv.gz"]
        + [f"results/{w.dataset}/de/{wf}/unintegrated.csv.gz" for wf in RAW_DE_WORKFLOWS],
    output:
        "results/{dataset}/scores/de_curves.csv.gz",
    log:
        "results/logs/{dataset}/score_de_curves.log",
    benchmark:
        "results/benchmarks/{dataset}/score_de_curves.tsv"
    conda:
        "../envs/score.yaml"
    resources:
        mem_mb=4000,
        runtime=10,
    script:
        "../workflow_scripts/score/de_curves.py"


rule score_explain_topk:
    input:
        data="results/{dataset}/data.h5ad",
        tables=lambda w: explain_tables(w.dataset),
    output:
        topk="results/{dataset}/scores/explain_topk.csv",
        genes="results/{dataset}/scores/explain_top_genes.csv",
    log:
        "results/logs/{dataset}/explain/score_explain_topk.log",
    benchmark:
        "results/benchmarks/{dataset}/explain/score_explain_topk.tsv"
    conda:
        "../envs/score.yaml"
    resources:
        mem_mb=4000,
        runtime=10,
    script:
        "../workflow_scripts/score/explain_topk.py"


if PUBLISHED:

    localrules:
        paper_claims,  # small tables: not worth a cluster job

    rule paper_claims:
        # our measurements by the paper's protocol beside its published values, and which of
        # its claims reproduce (workflow_scripts/score/paper.py)
        input:
            published=PUBLISHED[0],
            scib="results/scib_summary.csv",
            truth="results/truth_summary.csv",
            de=expand("results/{dataset}/scores/de.csv", dataset=DATASETS),
            genes=expand("results/{dataset}/de/wilcoxon.csv.gz", dataset=DATASETS),
        output:
            comparison="results/paper_comparison.csv",
            claims="results/paper_claims.csv",
        log:
            "results/logs/paper_claims.log",
        conda:
            "../envs/score.yaml"
        script:
            "../workflow_scripts/score/paper_claims.py"

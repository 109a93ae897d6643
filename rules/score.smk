# Stage 3: scores of every method's output -> results/<dataset>/scores/*.csv and summaries.

localrules: scib_summary, truth_summary, verdict  # they stack CSVs: not worth a cluster job
# One job per dataset and score family: the scorers' imports and warm-up are paid once per
# dataset, not once per method. Methods that failed or were skipped get rows saying why.


rule score_scib:
    input:
        unpack(scored_inputs),
    output:
        "results/{dataset}/scores/scib.csv",
    params:
        skipped=lambda w: skipped_methods(w.dataset),
    log:
        "results/logs/{dataset}/score_scib.log",
    benchmark:
        "results/benchmarks/{dataset}/score_scib.tsv"
    threads: 1  # scib metrics ran 2-3x faster per metric on one thread; jobs run side by side
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../envs/score.yaml"
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
    params:
        skipped=lambda w: skipped_methods(w.dataset),
    log:
        "results/logs/{dataset}/score_expression.log",
    benchmark:
        "results/benchmarks/{dataset}/score_expression.tsv"
    resources:
        mem_mb=8000,
        runtime=30,
    conda:
        "../envs/score.yaml"
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
    params:
        replicates=replicate_rows(REPLICATES),  # with seeds: means over seeds, intervals, paired tests
    log:
        "results/logs/verdict.log",
    conda:
        "../envs/score.yaml"
    script:
        "../workflow_scripts/score/verdict.py"

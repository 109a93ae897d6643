# Stage 3: scores of every method's output -> results/<dataset>/scores/*.csv and summaries.


rule score_scib:
    input:
        data="results/{dataset}/data.h5ad",
        integrated="results/{dataset}/integrated/{method}.h5ad",
    output:
        "results/{dataset}/scores/scib/{method}.csv",
    params:
        step="score",
    log:
        "results/logs/{dataset}/score_scib/{method}.log",
    benchmark:
        "results/benchmarks/{dataset}/score_scib/{method}.tsv"
    threads: 1  # scib metrics ran 2-3x faster per metric on one thread; jobs run side by side
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../envs/score.yaml"
    script:
        "../workflow_scripts/scib_scores.py"


rule collect_scib:
    input:
        unpack(score_inputs("scib")),
    output:
        "results/{dataset}/scores/scib.csv",
    params:
        step="collect",
        dataset="{dataset}",
    log:
        "results/logs/{dataset}/collect_scib.log",
    benchmark:
        "results/benchmarks/{dataset}/collect_scib.tsv"
    conda:
        "../envs/score.yaml"
    script:
        "../workflow_scripts/scib_scores.py"


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
        "../workflow_scripts/summary.py"


# Distance of each method's corrected expression to the simulated batch-free truth
# (workflow_scripts/truth_scores.py; methods without expression give no rows).


rule score_expression:
    input:
        data="results/{dataset}/data.h5ad",
        integrated="results/{dataset}/integrated/{method}.h5ad",
    output:
        "results/{dataset}/scores/expression/{method}.csv",
    params:
        step="score",
    log:
        "results/logs/{dataset}/score_expression/{method}.log",
    benchmark:
        "results/benchmarks/{dataset}/score_expression/{method}.tsv"
    resources:
        mem_mb=8000,
        runtime=30,
    conda:
        "../envs/score.yaml"
    script:
        "../workflow_scripts/truth_scores.py"


rule collect_expression:
    input:
        unpack(score_inputs("expression")),
    output:
        "results/{dataset}/scores/expression.csv",
    params:
        step="collect",
        dataset="{dataset}",
    log:
        "results/logs/{dataset}/collect_expression.log",
    benchmark:
        "results/benchmarks/{dataset}/collect_expression.tsv"
    conda:
        "../envs/score.yaml"
    script:
        "../workflow_scripts/truth_scores.py"


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
        "../workflow_scripts/summary.py"

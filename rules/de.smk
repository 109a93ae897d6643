# Stage 3b: differential expression of every method's output and of covariate-aware workflows on
# the raw counts, scored against the simulated DE genes (workflow_scripts/de.py, de_scores.py).


rule de_wilcoxon:
    input:
        data="results/{dataset}/data.h5ad",
        integrated=integrated_output("{dataset}", "{method}"),
    output:
        genes="results/{dataset}/de/wilcoxon/{method}.csv.gz",
        scores="results/{dataset}/scores/de/wilcoxon/{method}.csv",
    params:
        step="score",
        workflow="wilcoxon",
        seed=config["seed"],
        params={},
    log:
        "results/logs/{dataset}/de/wilcoxon/{method}.log",
    benchmark:
        "results/benchmarks/{dataset}/de/wilcoxon_{method}.tsv"
    resources:
        mem_mb=8000,
        runtime=30,
    conda:
        "../envs/score.yaml"
    script:
        "../workflow_scripts/de_scores.py"


rule de_raw_counts:
    input:
        data="results/{dataset}/data.h5ad",
    output:
        genes="results/{dataset}/de/{workflow}/unintegrated.csv.gz",
        scores="results/{dataset}/scores/de/{workflow}/unintegrated.csv",
    wildcard_constraints:
        workflow="|".join(RAW_DE_WORKFLOWS) or "none",
    params:
        step="score",
        workflow="{workflow}",
        seed=config["seed"],
        params=lambda wildcards: config["de"][wildcards.workflow],
    log:
        "results/logs/{dataset}/de/{workflow}.log",
    benchmark:
        "results/benchmarks/{dataset}/de/{workflow}.tsv"
    threads: lambda wildcards: config["threads"] if wildcards.workflow == "scvi_de" else 1
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../envs/integrate.yaml"  # scvi-tools
    script:
        "../workflow_scripts/de_scores.py"


rule collect_de:
    input:
        unpack(score_inputs("de/wilcoxon")),
        raw=expand("results/{{dataset}}/scores/de/{workflow}/unintegrated.csv", workflow=RAW_DE_WORKFLOWS),
    output:
        "results/{dataset}/scores/de.csv",
    params:
        step="collect",
        dataset="{dataset}",
    log:
        "results/logs/{dataset}/collect_de.log",
    benchmark:
        "results/benchmarks/{dataset}/collect_de.tsv"
    conda:
        "../envs/score.yaml"
    script:
        "../workflow_scripts/de_scores.py"

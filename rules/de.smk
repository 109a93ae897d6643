# Stage 3b: differential expression of every method's output and of covariate-aware workflows on
# the raw counts, scored against the simulated DE genes (workflow_scripts/analyse/de.py, de_scores.py).


rule de_raw_counts:
    input:
        data="results/{dataset}/data.h5ad",
        # scvi_de reads the dataset's scVI model (trained once, by integrate_scvi)
        model=lambda w: [model_dir(w.dataset, "scvi")] if w.workflow == "scvi_de" and "scvi" in ran_methods(w.dataset) else [],
    output:
        genes="results/{dataset}/de/{workflow}/unintegrated.csv.gz",
        scores="results/{dataset}/scores/de/{workflow}/unintegrated.csv",
    log:
        "results/logs/{dataset}/de/{workflow}.log",
    benchmark:
        "results/benchmarks/{dataset}/de/{workflow}.tsv"
    wildcard_constraints:
        workflow="|".join(RAW_DE_WORKFLOWS) or "none",
    conda:
        "../envs/integrate.yaml"  # scvi-tools
    threads: lambda wildcards: config["threads"] if wildcards.workflow == "scvi_de" else 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        step="score",
        workflow="{workflow}",
        seed=method_seed,
        params=lambda wildcards, input: dict(
            config["de"][wildcards.workflow], **({"model_dir": input.model[0]} if input.model else {})
        ),
    script:
        "../workflow_scripts/score/de.py"


rule score_de:
    # Wilcoxon on every method's corrected values (one process per dataset), with the
    # raw-count workflows' scores
    input:
        unpack(scored_inputs),
        raw=expand("results/{{dataset}}/scores/de/{workflow}/unintegrated.csv", workflow=RAW_DE_WORKFLOWS),
    output:
        scores="results/{dataset}/scores/de.csv",
        genes="results/{dataset}/de/wilcoxon.csv.gz",
    log:
        "results/logs/{dataset}/score_de.log",
    benchmark:
        "results/benchmarks/{dataset}/score_de.tsv"
    conda:
        "../envs/score.yaml"
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        skipped=lambda w: skipped_methods(w.dataset),
    script:
        "../workflow_scripts/score/de.py"

# Stage 3c: the genes tied to each covariate level, from GENEX's trained model and from rival
# rankings on the raw counts (workflow_scripts/analyse/explain.py) -> results/<dataset>/explain/
# <method>.csv.gz, scored against the simulated gene effects (workflow_scripts/score/explain.py).

# Explanation methods and their parameters, in table order ({} = defaults): GENEX's (`genex`
# and `genex_<name>` entries: GENEX.explain arguments, run when GENEX is among the methods) and
# rivals; the schema's default is GENEX and the cheap rivals.
EXPLAIN = config["explain"]
GENEX_EXPLAINS = [m for m in EXPLAIN if m.split("_")[0] == "genex"] if "genex" in METHODS else []
RIVALS = [r for r in EXPLAIN if r.split("_")[0] != "genex"]
MODEL_RIVALS = [r for r in ("scvi_de", "mrvi") if r in RIVALS]  # train a model: threads, scvi-tools
CHEAP_RIVALS = [r for r in RIVALS if r not in MODEL_RIVALS]
EXPLAIN_METHODS = GENEX_EXPLAINS + RIVALS


localrules:
    explain_summary,  # it stacks CSVs: not worth a cluster job


# GENEX's explanations of one dataset in one job, and the cheap rivals in another: the libraries
# load once per dataset, not once per method.
if GENEX_EXPLAINS:

    rule explain_genex:
        input:
            data="results/{dataset}/data.h5ad",
            model=model_dir("{dataset}", "genex"),
        output:
            expand("results/{{dataset}}/explain/{explainer}.csv.gz", explainer=GENEX_EXPLAINS),
        log:
            "results/logs/{dataset}/explain/genex.log",
        benchmark:
            "results/benchmarks/{dataset}/explain/genex.tsv"
        conda:
            "../envs/integrate.yaml"
        threads: config["threads"]
        resources:
            mem_mb=8000,
            runtime=60,
            gpu=1 if config["gpu"] else 0,
        params:
            methods=GENEX_EXPLAINS,
            seed=method_seed,
            params=[EXPLAIN[m] for m in GENEX_EXPLAINS],
        script:
            "../workflow_scripts/analyse/explain.py"


if CHEAP_RIVALS:

    rule explain_rivals:
        input:
            data="results/{dataset}/data.h5ad",
        output:
            expand("results/{{dataset}}/explain/{rival}.csv.gz", rival=CHEAP_RIVALS),
        log:
            "results/logs/{dataset}/explain/rivals.log",
        benchmark:
            "results/benchmarks/{dataset}/explain/rivals.tsv"
        conda:
            "../envs/score.yaml"
        resources:
            mem_mb=8000,
            runtime=30,
        params:
            methods=CHEAP_RIVALS,
            seed=method_seed,
            params=[EXPLAIN[r] for r in CHEAP_RIVALS],
        script:
            "../workflow_scripts/analyse/explain.py"


rule explain_rivals_scvi:
    input:
        data="results/{dataset}/data.h5ad",
        # scvi_de reads the dataset's scVI model (trained once, by integrate_scvi); MrVI trains its own
        model=lambda w: [model_dir(w.dataset, "scvi")] if w.rival == "scvi_de" and "scvi" in ran_methods(w.dataset) else [],
    output:
        "results/{dataset}/explain/{rival}.csv.gz",
    log:
        "results/logs/{dataset}/explain/{rival}.log",
    benchmark:
        "results/benchmarks/{dataset}/explain/{rival}.tsv"
    wildcard_constraints:
        rival="|".join(MODEL_RIVALS) or "none",
    conda:
        "../envs/integrate.yaml"  # scvi-tools
    threads: config["threads"]
    resources:
        mem_mb=16000,
        runtime=120,
    params:
        methods=lambda wildcards: [wildcards.rival],
        seed=method_seed,
        params=lambda wildcards, input: [dict(EXPLAIN[wildcards.rival], **({"model_dir": input.model[0]} if input.model else {}))],
    script:
        "../workflow_scripts/analyse/explain.py"


rule score_explain:
    input:
        data="results/{dataset}/data.h5ad",
        # GENEX's tables, or its failure record when its training failed; none when it was skipped
        tables=lambda w: explain_tables(w.dataset),
        failures=lambda w: [failure_record(w.dataset, "genex")] if GENEX_EXPLAINS and "genex" in failed_methods(w.dataset) else [],
    output:
        "results/{dataset}/scores/explain.csv",
    log:
        "results/logs/{dataset}/explain/score_explain.log",
    benchmark:
        "results/benchmarks/{dataset}/explain/score_explain.tsv"
    conda:
        "../envs/score.yaml"
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        genex_explains=GENEX_EXPLAINS,
    script:
        "../workflow_scripts/score/explain.py"


rule explain_summary:
    input:
        expand("results/{dataset}/scores/explain.csv", dataset=DATASETS),
    output:
        "results/explain_summary.csv",
    log:
        "results/logs/explain_summary.log",
    conda:
        "../envs/score.yaml"
    script:
        "../workflow_scripts/score/summary.py"

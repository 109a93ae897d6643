# Stage 2: every method on every dataset -> results/<dataset>/integrated/<method>.h5ad
# (obsm["X_emb"], layers["corrected"] for expression methods, uns["method"]; DATA.md).
# One rule per method, named integrate_<method>, with its own resources.

METHOD_RESOURCES = {
    "genex": dict(mem_mb=16000, runtime=120, gpu=1 if config["gpu"] else 0),
    "scvi": dict(mem_mb=16000, runtime=120),
}

for method in METHODS:

    rule:
        name:
            f"integrate_{method}"
        input:
            data="results/{dataset}/data.h5ad",
        output:
            integrated=integrated_output("{dataset}", method),
            # GENEX's trained model, which its explanations read (genex_core.GENEX.load)
            **({"model": directory(genex_model("{dataset}"))} if method == "genex" else {}),
        params:
            method=method,
            params=config["methods"][method],
            seed=config["seed"],
        log:
            f"results/logs/{{dataset}}/integrate/{method}.log",
        benchmark:
            f"results/benchmarks/{{dataset}}/integrate/{method}.tsv"
        threads: config["threads"]
        resources:
            **METHOD_RESOURCES.get(method, dict(mem_mb=8000, runtime=60)),
        conda:
            "../envs/integrate.yaml"
        script:
            "../workflow_scripts/integrate.py"

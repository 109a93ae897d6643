# Stage 2: every method on every dataset -> results/<dataset>/integrated/<method>.h5ad
# (obsm["X_emb"], layers["corrected"] for expression methods, uns["method"]; DATA.md).
# One rule per method, named integrate_<method>, wired from its registry entry
# (workflow_scripts/registry.py): a saved model where it saves one, the model it starts from.

GPU = dict(mem_mb=16000, runtime=120, gpu=1 if config["gpu"] else 0)  # torch methods: a GPU when asked
METHOD_RESOURCES = {"genex": GPU, "genex_label_free": GPU, "genex_published": GPU, "scvi": GPU, "scanvi": GPU}

for method in METHODS:
    entry = REGISTRY[method]

    rule:
        name:
            f"integrate_{method}"
        input:
            **({"pretrained": model_dir("{dataset}", entry.starts_from)} if entry.starts_from else {}),
            data="results/{dataset}/data.h5ad",
        output:
            **({"model": directory(model_dir("{dataset}", method))} if entry.saves_model else {}),
            integrated=integrated_output("{dataset}", method),
        log:
            f"results/logs/{{dataset}}/integrate/{method}.log",
        benchmark:
            f"results/benchmarks/{{dataset}}/integrate/{method}.tsv"
        conda:
            "../envs/integrate.yaml"
        threads: config["threads"]
        resources:
            **METHOD_RESOURCES.get(method, dict(mem_mb=8000, runtime=60)),
        params:
            method=method,
            params=config["methods"][method],
            seed=method_seed,
        script:
            "../workflow_scripts/integrate/run.py"

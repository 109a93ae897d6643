# Stage 1: every dataset -> results/<dataset>/data.h5ad in the contract layout (DATA.md).


rule dataset:
    input:
        dataset_inputs,
    output:
        "results/{dataset}/data.h5ad",
    params:
        spec=dataset_spec,
    log:
        "results/logs/{dataset}/dataset.log",
    benchmark:
        "results/benchmarks/{dataset}/dataset.tsv"
    threads: config["threads"]
    resources:
        mem_mb=8000,
        runtime=30,
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/data/datasets.py"

# Stage 1: every dataset -> results/<dataset>/data.h5ad in the contract layout (DATA.md).


rule dataset:
    input:
        dataset_inputs,
    output:
        "results/{dataset}/data.h5ad",
    log:
        "results/logs/{dataset}/dataset.log",
    benchmark:
        "results/benchmarks/{dataset}/dataset.tsv"
    conda:
        "../envs/data.yaml"
    threads: config["threads"]
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        spec=dataset_spec,
    script:
        "../workflow_scripts/data/datasets.py"

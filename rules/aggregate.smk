# Replicates and sweeps (config `seeds`, `sweep`): every score table's mean and 95 % t-interval
# over seeds, ranks per seed and their stability -> results/aggregate/*.csv
# (workflow_scripts/score/aggregate.py). Only when the config replicates; the sweep figure reads them.


localrules:
    aggregate,  # it stacks CSVs: not worth a cluster job


AGGREGATES = [f"results/aggregate/{name}.csv" for name in ("scib", "expression", "de", "explain", "aspects", "ranks")]


rule aggregate:
    input:
        **{
            table: expand("results/{dataset}/scores/{table}.csv", dataset=DATASETS, table=table)
            for table in ("scib", "expression", "de", "explain")
        },
    output:
        AGGREGATES,
    log:
        "results/logs/aggregate.log",
    benchmark:
        "results/benchmarks/all/aggregate.tsv"
    conda:
        "../envs/score.yaml"
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        replicates=replicate_rows(REPLICATES),
    script:
        "../workflow_scripts/score/aggregate.py"

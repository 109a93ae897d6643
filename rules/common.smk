# Config validation, input functions and targets. Wiring only.
import os
from pathlib import Path

from snakemake.utils import validate

# Rule scripts import genex_core and workflow_scripts from this checkout, in the venv and in
# per-rule conda envs alike (and inside cluster jobs, which re-read this file).
os.environ.update(PYTHONPATH=os.pathsep.join(filter(None, [workflow.basedir, os.environ.get("PYTHONPATH")])))

validate(config, schema="../config/config.schema.yaml")

DATASETS = list(config["datasets"])


wildcard_constraints:
    dataset="|".join(DATASETS),


def dataset_spec(wildcards):
    return config["datasets"][wildcards.dataset]


def dataset_inputs(wildcards):
    """The files a dataset is made from, so Snakemake re-imports when they change."""
    spec = dataset_spec(wildcards)
    if "h5ad" in spec:
        return [spec["h5ad"]]
    if "splatter_dir" in spec:
        folder = Path(spec["splatter_dir"])
        return [str(p) for p in sorted(folder.glob("*.csv")) + sorted(folder.glob("*.mtx.gz"))]
    return []


def all_targets():
    return expand("results/{dataset}/data.h5ad", dataset=DATASETS)

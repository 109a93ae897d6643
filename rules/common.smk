# Config validation, input functions and targets. Wiring only.
import os
from pathlib import Path

from snakemake.utils import validate

# Rule scripts import genex_core and workflow_scripts from this checkout, in the venv and in
# per-rule conda envs alike (and inside cluster jobs, which re-read this file).
os.environ.update(PYTHONPATH=os.pathsep.join(filter(None, [workflow.basedir, os.environ.get("PYTHONPATH")])))
from workflow_scripts.config_keys import check_config_keys  # noqa: E402 (yaml only)

check_config_keys(config, Path(workflow.basedir) / "config" / "config.schema.yaml")  # names an unknown key
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
    return ["results/report.html"]  # needs every table and figure


METHODS = list(config["methods"])
RAW_DE_WORKFLOWS = list(config["de"])  # DE on the raw counts (workflow_scripts/de.py)


wildcard_constraints:
    method="|".join(METHODS),


def integrated_output(dataset, method):
    return f"results/{dataset}/integrated/{method}.h5ad"


def genex_model(dataset):
    return f"results/{dataset}/integrated/genex_model"


def failure_record(dataset, method):
    """Written by workflow_scripts/integrate.py when a method fails (the rule fails too)."""
    return f"results/{dataset}/integrated/{method}.failed.json"


def failed_methods(dataset):
    """Methods the tables show as failed instead of scoring them. Only with
    `--config report_failures=True` (the second pass of `make benchmark`): those whose last
    run left a failure record and no output. Without it every method is required, so a
    failed one is retried."""
    if not config["report_failures"]:
        return []
    return [
        m
        for m in METHODS
        if Path(failure_record(dataset, m)).exists()
        and not Path(integrated_output(dataset, m)).exists()
    ]


def score_inputs(kind):
    """Input function of collect_<kind>: each method's table, or its failure record."""

    def inputs(wildcards):
        failed = failed_methods(wildcards.dataset)
        return {
            "scores": [
                f"results/{wildcards.dataset}/scores/{kind}/{m}.csv"
                for m in METHODS
                if m not in failed
            ],
            "failures": [failure_record(wildcards.dataset, m) for m in failed],
        }

    return inputs

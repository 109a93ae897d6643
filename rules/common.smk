# Config validation, input functions and targets. Wiring only.
import os
import re
import sys
from pathlib import Path

import yaml
from snakemake.utils import validate

# Rule scripts import genex_core and workflow_scripts from this checkout, in the venv and in
# per-rule conda envs alike (and inside cluster jobs, which re-read this file).
os.environ.update(PYTHONPATH=os.pathsep.join(filter(None, [workflow.basedir, os.environ.get("PYTHONPATH")])))
sys.path.insert(0, workflow.basedir)
from workflow_scripts.registry import METHODS as REGISTRY  # noqa: E402 (a leaf module: no scanpy)
from workflow_scripts.config_keys import check_config_keys  # noqa: E402 (yaml only)
from workflow_scripts.replicates import expand_datasets, replicate_rows  # noqa: E402 (a leaf module)

SCHEMA = Path(workflow.basedir) / "config" / "config.schema.yaml"
check_config_keys(config, SCHEMA)  # names an unknown key
validate(config, schema="../config/config.schema.yaml")

# The concrete datasets: the config's, expanded by `seeds` and `sweep` (workflow_scripts/replicates.py;
# without them, the config's names). Each swept value is checked against the schema too.
REPLICATES = expand_datasets(
    config["datasets"],
    config.get("seeds"),
    config.get("sweep"),
    config["seed"],
    simulate_keys=yaml.safe_load(SCHEMA.read_text())["$defs"]["splat"]["properties"],
)
if "sweep" in config:
    for _replicate in REPLICATES.values():
        validate(
            {"datasets": {_replicate.base: _replicate.spec}, "methods": config["methods"]}, schema="../config/config.schema.yaml"
        )
DATASETS = list(REPLICATES)
# the datasets whose per-dataset figures the report shows: with seeds, the first seed's only
# (every seed is in the aggregates; 3 seeds would triple the page)
FIGURE_DATASETS = [name for name, r in REPLICATES.items() if "seeds" not in config or r.seed == config["seeds"][0]]
REPLICATED = "seeds" in config or "sweep" in config  # aggregates over seeds and sweep values


wildcard_constraints:
    dataset="|".join(map(re.escape, DATASETS)),


def dataset_spec(wildcards):
    return REPLICATES[wildcards.dataset].spec


def method_seed(wildcards):
    """The seed of the methods (and explanations, DE) on this dataset: its replicate's seed."""
    return REPLICATES[wildcards.dataset].seed


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
    return ["results/report.html"]  # needs every table and figure (and the aggregates when replicated)


METHODS = list(config["methods"])
RAW_DE_WORKFLOWS = list(config["de"])  # DE on the raw counts (workflow_scripts/analyse/de.py)
for _method in METHODS:
    if (_start := REGISTRY[_method].starts_from) and _start not in METHODS:
        raise ValueError(f"config: methods: {_method} starts from {_start}'s trained model: add `{_start}: {{}}` to methods")
for _section in ("de", "explain"):
    if "scvi_de" in config.get(_section, {}) and "scvi" not in METHODS:
        raise ValueError(f"config: {_section}: scvi_de reads the dataset's trained scVI model: add `scvi: {{}}` to methods")


wildcard_constraints:
    method="|".join(METHODS),


def integrated_output(dataset, method):
    return f"results/{dataset}/integrated/{method}.h5ad"


def model_dir(dataset, method):
    """A method's saved model (registry `saves_model`), read by later stages."""
    return f"results/{dataset}/integrated/{method}_model"


def skipped_methods(dataset):
    """{method: 'skipped: <why>'} for the methods this dataset cannot feed (registry
    `uses_labels`, `needs_counts`): they do not run, and every table says why."""
    spec = REPLICATES[dataset].spec
    has_labels, has_counts = spec.get("label_key", "cell_type") is not None, spec.get("counts", True)
    return {m: why for m in METHODS if (why := REGISTRY[m].skip_reason(has_labels, has_counts))}


def failure_record(dataset, method):
    """Written by workflow_scripts/integrate/run.py when a method fails (the rule fails too)."""
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
        if m not in skipped_methods(dataset)
        and Path(failure_record(dataset, m)).exists()
        and not Path(integrated_output(dataset, m)).exists()
    ]


def ran_methods(dataset):
    """The methods whose outputs later stages read: neither skipped nor failed."""
    missing = set(failed_methods(dataset)) | set(skipped_methods(dataset))
    return [m for m in METHODS if m not in missing]


def scored_inputs(wildcards):
    """The dataset, the outputs of the methods that ran, the failure records of those that failed."""
    return {
        "data": f"results/{wildcards.dataset}/data.h5ad",
        "integrated": [integrated_output(wildcards.dataset, m) for m in ran_methods(wildcards.dataset)],
        "failures": [failure_record(wildcards.dataset, m) for m in failed_methods(wildcards.dataset)],
    }


def explain_tables(dataset):
    """A dataset's explanation tables: GENEX's only when it ran (otherwise the scores say why),
    and the rivals' (EXPLAIN_METHODS and GENEX_EXPLAINS: rules/explain.smk)."""
    return [
        f"results/{dataset}/explain/{m}.csv.gz"
        for m in EXPLAIN_METHODS
        if not (m in GENEX_EXPLAINS and "genex" not in ran_methods(dataset))
    ]

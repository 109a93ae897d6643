"""The Snakemake workflow as a user runs it: lint, dry run of the default config, a real run of
a tiny config, and clear failures on a bad config or a bad dataset."""

import json
import subprocess
import sys
from pathlib import Path

import anndata as ad
import pandas as pd
import pytest
import yaml

from workflow_scripts.contract import validate_dataset

REPO = Path(__file__).resolve().parents[2]
TINY_CONFIG = REPO / "tests" / "configs" / "tiny.yaml"
SPLATTER_REFERENCE = REPO.parent / "shared" / "reference" / "splatter_reference"


def snakemake(*args, cwd=REPO, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def test_lint_is_clean():
    run = snakemake("--lint")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Congratulations" in run.stdout + run.stderr


def test_default_config_dry_run(tmp_path):
    run = snakemake(
        "--dry-run", "--cores", "2", "--configfile", str(REPO / "config" / "config.yaml"), "--directory", str(tmp_path)
    )
    assert run.returncode == 0, run.stderr
    jobs = (
        "dataset",
        "integrate_genex",
        "integrate_scvi",
        "integrate_truth",
        "score_scib",
        "score_expression",
        "score_de",
        "de_raw_counts",
        "truth_summary",
        "explain_genex",
        "score_explain",
    )
    for job in jobs:
        assert f"rule {job}:" in run.stdout or f"localrule {job}:" in run.stdout, job
    assert "explain/stratified_lfc.csv.gz" in run.stdout  # the strongest rival, in the cheap rivals job


def test_failed_genex_is_scored_as_failed_not_explained(tmp_path):
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["methods"]["genex"] = {}
    config["explain"] = {"genex": {}, "genex_ig": {"method": "ig_neutral"}, "random": {}}
    record = tmp_path / "results" / "tiny" / "integrated" / "genex.failed.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"method": "genex", "dataset": "tiny", "reason": "MemoryError: out of memory"}))
    path = write_config(tmp_path / "c.yaml", config)
    run = snakemake("--dry-run", "--configfile", str(path), "--directory", str(tmp_path), "--config", "report_failures=True")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "rule score_explain:" in run.stdout and "rule explain_genex:" not in run.stdout


@pytest.mark.slow
def test_tiny_config_runs_end_to_end(tmp_path):
    """Every stage on a tiny simulation and, where ../shared/ is present, the real-Splatter
    folder; one method's earlier run failed: in report_failures mode it is shown as failed."""
    config = yaml.safe_load(TINY_CONFIG.read_text())
    if (SPLATTER_REFERENCE / "counts.mtx.gz").exists():
        config["datasets"]["reference"] = {"splatter_dir": str(SPLATTER_REFERENCE)}
    datasets = set(config["datasets"])
    config["methods"]["combat"] = {}
    for name in datasets:
        record = tmp_path / "results" / name / "integrated" / "combat.failed.json"
        record.parent.mkdir(parents=True)
        record.write_text(json.dumps({"method": "combat", "dataset": name, "reason": "MemoryError: out of memory"}))
    run = snakemake(
        "--cores",
        "2",
        "--configfile",
        str(write_config(tmp_path / "c.yaml", config)),
        "--directory",
        str(tmp_path),
        "--config",
        "report_failures=True",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    for name in datasets:
        adata = ad.read_h5ad(tmp_path / "results" / name / "data.h5ad")
        info = adata.uns["dataset"]
        validate_dataset(adata, name, info["batch_key"], info["label_key"], list(info["covariates"]))
        assert (tmp_path / "results" / "logs" / name / "dataset.log").exists()
        assert (tmp_path / "results" / "benchmarks" / name / "dataset.tsv").exists()
    summary = pd.read_csv(tmp_path / "results" / "scib_summary.csv")
    assert set(summary["dataset"]) == datasets
    assert set(summary["method"]) == {"unintegrated", "harmony", "combat", "label_shift", "scvi", "scanvi"}
    combat_tiny = summary[(summary["dataset"] == "tiny") & (summary["method"] == "combat")]
    assert (combat_tiny["status"] == "failed: MemoryError: out of memory").all()
    assert combat_tiny["value"].isna().all()
    scored = summary[(summary["status"] == "ok") & (summary["category"] != "total")]["value"].dropna()
    assert len(scored) > 0 and scored.between(0, 1).all()
    truth = pd.read_csv(tmp_path / "results" / "truth_summary.csv")
    assert set(truth["method"]) == {"unintegrated", "combat", "label_shift", "scvi", "scanvi"}  # harmony returns no expression
    assert truth.loc[truth["dataset"] == "tiny", "value"].notna().any()
    assert (truth.loc[truth["method"] == "combat", "status"] == "failed: MemoryError: out of memory").all()
    de = truth[truth["metric"] == "auprc"].set_index(["dataset", "method", "representation", "category"])["value"]
    assert de["tiny", "unintegrated", "ols_batch", "cell_type_pair"] > 0.5
    assert de["tiny", "unintegrated", "wilcoxon", "covariate:condition"] > 0.5
    genes = pd.read_csv(tmp_path / "results" / "tiny" / "de" / "wilcoxon.csv.gz")
    assert genes["is_true"].any() and len(genes) % 200 == 0
    assert set(genes["method"]) == {"unintegrated", "label_shift", "scvi", "scanvi"}
    assert set(summary["uses_labels"][summary["method"] == "label_shift"]) == {True}
    # scVI is trained once per dataset (scANVI, scVI DE and its explanation load its model)
    fits = {
        p.relative_to(tmp_path / "results" / "logs"): p.read_text().count("`Trainer.fit` stopped")
        for p in (tmp_path / "results" / "logs").rglob("*.log")
    }
    for name in datasets:
        assert {str(p) for p, n in fits.items() if n and p.parts[0] == name} == {
            f"{name}/integrate/scvi.log",
            f"{name}/integrate/scanvi.log",
        }
        assert all(fits[p] == 1 for p in fits if fits[p] and p.parts[0] == name)
    assert any(p.name == "scvi_de.log" for p in fits)  # scVI DE ran, without training


def test_unknown_config_key_is_refused(tmp_path):
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["datasets"]["tiny"]["simulate"]["batch_fac_loc"] = 0.5  # a typo of batch_facLoc
    run = snakemake("--dry-run", "--configfile", str(write_config(tmp_path / "c.yaml", config)), "--directory", str(tmp_path))
    assert run.returncode != 0
    assert "unknown key 'batch_fac_loc' in datasets.tiny.simulate. Did you mean 'batch_facLoc'?" in run.stdout + run.stderr


def test_bad_dataset_fails_its_rule_with_a_clear_message(tmp_path):
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["datasets"]["tiny"]["simulate"]["batchCells"] = [200]
    run = snakemake("--cores", "1", "--configfile", str(write_config(tmp_path / "c.yaml", config)), "--directory", str(tmp_path))
    assert run.returncode != 0
    assert "dataset 'tiny': obs['batch']: has 1 level" in run.stdout + run.stderr
    assert not (tmp_path / "results" / "tiny" / "data.h5ad").exists()


def test_a_dataset_without_labels_skips_the_label_using_methods(tmp_path):
    """`label_key: null`: one label for every cell; label_shift and scANVI do not run and their
    rows say `skipped: needs labels` (the scorers' tests check the rows)."""
    from workflow_scripts.data.datasets import load_dataset
    from workflow_scripts.names import UNLABELLED

    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["datasets"]["tiny"]["label_key"] = None
    data = load_dataset("tiny", config["datasets"]["tiny"])
    assert data.uns["dataset"]["label_key"] == UNLABELLED and data.obs[UNLABELLED].nunique() == 1
    run = snakemake("--dry-run", "--configfile", str(write_config(tmp_path / "c.yaml", config)), "--directory", str(tmp_path))
    assert run.returncode == 0, run.stderr[-3000:]
    assert "rule integrate_scvi:" in run.stdout
    assert "rule integrate_label_shift:" not in run.stdout and "rule integrate_scanvi:" not in run.stdout

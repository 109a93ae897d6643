"""profiles/slurm and profiles/local load, and every SLURM job gets a memory and a time limit
(dry runs: no SLURM needed; `make test-slurm` runs the real thing)."""

import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
TINY_CONFIG = REPO / "tests" / "configs" / "tiny.yaml"


def dry_run(tmp_path, profile, config, *args):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(REPO / "Snakefile"),
            "--dry-run",
            "--profile",
            str(REPO / "profiles" / profile),
            "--configfile",
            str(path),
            "--directory",
            str(tmp_path),
            *args,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    jobs = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:\n)", run.stdout):
        head = re.match(r"(?:local)?rule (\w+):\n", block)
        resources = re.search(r"^    resources: (.*)$", block, re.M)
        if head and resources:
            jobs.setdefault(head.group(1), dict(re.findall(r"(\w+)=([^,]+)", resources.group(1))))
    return jobs


def test_slurm_profile_gives_every_job_memory_and_time(tmp_path):
    jobs = dry_run(tmp_path, "slurm", yaml.safe_load(TINY_CONFIG.read_text()))
    assert {"dataset", "integrate_scvi", "score_scib", "report"} <= set(jobs)
    for rule, resources in jobs.items():
        assert int(resources["mem_mb"]) >= 1000 and int(resources["runtime"]) >= 10, (rule, resources)
    assert int(jobs["integrate_scvi"]["mem_mb"]) > int(jobs["scib_summary"]["mem_mb"])


def test_gpu_true_asks_a_gpu_for_genex(tmp_path):
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["methods"]["genex"] = {}
    config["explain"]["genex"] = {}
    on = dry_run(tmp_path, "slurm", config, "--config", "gpu=True")
    assert on["integrate_genex"].get("gpu") == "1" and on["explain_genex"].get("gpu") == "1"
    assert "gpu" not in on["score_scib"] or on["score_scib"]["gpu"] == "0"
    off = dry_run(tmp_path, "slurm", config)
    assert off["integrate_genex"].get("gpu", "0") == "0"


def test_local_profile_loads(tmp_path):
    assert "dataset" in dry_run(tmp_path, "local", yaml.safe_load(TINY_CONFIG.read_text()))

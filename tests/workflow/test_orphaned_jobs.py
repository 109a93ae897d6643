"""Issue 14, item 3: a job orphaned by a killed Snakemake run must not replace what a newer run
wrote, and the temporary files a killed job left are removed by the next write."""

import os
import subprocess
import time

import anndata as ad
import numpy as np
import pytest

from genex_core import GENEX
from genex_core._atomic import StaleOutputError
from workflow_scripts.atomic import write_h5ad_atomic

SECOND = 1_000_000_000


def _marked(value: float) -> ad.AnnData:
    return ad.AnnData(X=np.full((3, 2), value, dtype=np.float32))


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid  # reaped: no such process any more (pids are not reused this fast)


def test_orphan_finishing_last_does_not_replace_the_newer_output(tmp_path, capsys):
    target = tmp_path / "genex.h5ad"
    orphan_started = time.time_ns() - 60 * SECOND  # the orphan started T, a minute ago
    write_h5ad_atomic(_marked(2.0), target, started_ns=orphan_started + 30 * SECOND)  # the newer run, after T
    with pytest.raises(StaleOutputError) as err:
        write_h5ad_atomic(_marked(1.0), target, started_ns=orphan_started)
    assert f"not replacing {target}" in str(err.value) and "orphan" in str(err.value)
    assert ad.read_h5ad(target).X[0, 0] == 2.0  # the newer result stays
    assert [p.name for p in tmp_path.iterdir()] == ["genex.h5ad"]  # no temporary left


def test_orphan_finishing_first_is_replaced_by_the_newer_job(tmp_path):
    target = tmp_path / "genex.h5ad"
    orphan_started = time.time_ns() - 60 * SECOND
    write_h5ad_atomic(_marked(1.0), target, started_ns=orphan_started)  # the orphan, done first
    assert target.stat().st_mtime_ns == orphan_started  # a file carries its writer's start
    write_h5ad_atomic(_marked(2.0), target, started_ns=orphan_started + 30 * SECOND)
    assert ad.read_h5ad(target).X[0, 0] == 2.0


def test_a_job_replaces_its_own_output(tmp_path):
    target = tmp_path / "data.h5ad"
    write_h5ad_atomic(_marked(1.0), target)
    write_h5ad_atomic(_marked(2.0), target)  # the same process: same start
    assert ad.read_h5ad(target).X[0, 0] == 2.0


def test_temporary_files_of_killed_jobs_are_removed_live_ones_kept(tmp_path):
    target = tmp_path / "data.h5ad"
    killed = tmp_path / f".data.h5ad.{_dead_pid()}.tmp"
    running = tmp_path / f".data.h5ad.{os.getppid()}.tmp"  # a live process (perhaps an orphan still writing)
    other = tmp_path / f".other.h5ad.{_dead_pid()}.tmp"
    for path in (killed, running, other):
        path.write_bytes(b"half")
    write_h5ad_atomic(_marked(1.0), target)
    assert not killed.exists() and running.exists() and other.exists()


def test_genex_save_refuses_to_replace_a_model_trained_later(tiny_adata, tmp_path):
    data = tiny_adata[:, :50].copy()
    orphan = GENEX(data, hidden=(8,), latent=4)
    newer = GENEX(data, hidden=(8,), latent=4)
    orphan._started_ns -= 60 * SECOND  # its training started a minute before the newer one's
    newer.save(tmp_path / "model")
    weights = (tmp_path / "model" / "model.pt").read_bytes()
    with pytest.raises(StaleOutputError, match="not replacing"):
        orphan.save(tmp_path / "model", overwrite=True)
    assert (tmp_path / "model" / "model.pt").read_bytes() == weights
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["model.pt", "registry.json"]
    newer.save(tmp_path / "model", overwrite=True)  # its own model: replaced
    orphan.save(tmp_path / "first")  # an orphan that saved first is replaced by the newer job
    newer.save(tmp_path / "first", overwrite=True)

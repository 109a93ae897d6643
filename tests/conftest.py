"""Shared fixtures: tiny simulations and the path to the real Splatter reference."""

from pathlib import Path

import pytest

from workflow_scripts.data.simulate import simulate

REPO = Path(__file__).resolve().parents[1]
SPLATTER_REFERENCE = REPO.parent / "shared" / "reference" / "splatter_reference"

TINY = dict(
    nGenes=300,
    batchCells=[150, 100],
    group_prob=[0.5, 0.3, 0.2],
    de_prob=0.2,
    de_facLoc=0.5,
    batch_facLoc=0.3,
    seed=11,
)


@pytest.fixture
def tiny_params():
    """Parameters of a tiny plain-Splat dataset (a fresh dict per test)."""
    return dict(TINY)


@pytest.fixture(scope="session")
def tiny_adata():
    """Plain Splat, two batches, three cell types (read-only: copy before changing)."""
    return simulate(TINY)


@pytest.fixture
def splatter_reference():
    if not (SPLATTER_REFERENCE / "counts.mtx.gz").exists():
        pytest.skip("../shared/reference/splatter_reference is absent")
    return SPLATTER_REFERENCE

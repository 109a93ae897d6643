"""Large data (issue 18): the scIB metrics quadratic in the number of cells run on a seeded,
stratified subsample above a threshold, and the score table says which and on how many cells."""

import anndata as ad
import numpy as np
import pytest

from workflow_scripts.contract import to_contract
from workflow_scripts.integrate.baseline import run_unintegrated
from workflow_scripts.names import EMBEDDING
from workflow_scripts.score.scib import (
    MIN_GROUP_CELLS,
    QUADRATIC,
    Representation,
    _evaluate,
    score_method,
    subsample,
    subsample_cells,
)


@pytest.fixture(scope="module")
def data(tiny_adata):
    return to_contract(tiny_adata.copy(), "tiny")


@pytest.fixture(scope="module")
def integrated(data):
    out = ad.AnnData(obs=data.obs[[]].copy())
    out.obsm[EMBEDDING] = run_unintegrated(data, "batch", "cell_type", seed=0, threads=1).embedding
    return out


def test_quadratic_metrics_subsampled_and_noted(data, integrated):
    table = score_method(data, integrated, "tiny", "unintegrated", subsample_cells=120, seed=1)
    quadratic = table["metric"].isin(QUADRATIC)
    assert quadratic.sum() == len(QUADRATIC) and table.loc[quadratic, "value"].dropna().between(0, 1).all()
    n = len(subsample_cells(data.obs, "batch", "cell_type", 120, 1))
    assert 100 <= n <= 160  # shares rounded per group, each at least MIN_GROUP_CELLS
    expected = f"subsampled: {n:,} of {data.n_obs:,} cells (quadratic in cells; stratified by batch and cell type, seed 1)"
    assert table.loc[quadratic, "note"].str.endswith(expected).all()
    assert not table.loc[~quadratic, "note"].str.contains("subsampled").any()  # the others see every cell


def test_subsampled_silhouettes_are_seeded_and_close(data, integrated):
    adata = ad.AnnData(obs=data.obs[["batch", "cell_type"]].copy())
    adata.obsm[EMBEDDING] = integrated.obsm[EMBEDDING]
    rep = Representation(adata, None, "batch", "cell_type", None, None, 1)
    assert subsample(rep, data.n_obs) is None  # not above the threshold: every cell
    small = subsample(rep, 120, seed=1)
    assert small.rep.adata.n_obs == len(subsample_cells(data.obs, "batch", "cell_type", 120, 1))
    for metric in ("asw_batch", "asw_label"):
        value = _evaluate(metric, small.rep)[0]
        assert value == _evaluate(metric, subsample(rep, 120, seed=1).rep)[0]  # seeded
        assert abs(value - _evaluate(metric, rep)[0]) < 0.1


def test_subsample_keeps_every_batch_and_cell_type(data):
    obs = data.obs
    cells = subsample_cells(obs, "batch", "cell_type", 30, 0)
    assert (np.diff(cells) > 0).all()
    full = obs.groupby(["batch", "cell_type"], observed=True).size()
    kept = obs.iloc[cells].groupby(["batch", "cell_type"], observed=True).size()
    assert kept.index.equals(full.index)
    assert (kept == np.minimum(full, MIN_GROUP_CELLS)).all()  # 30 cells asked: the floor wins

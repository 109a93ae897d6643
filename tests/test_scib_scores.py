"""scIB score tables (workflow_scripts/scib_scores.py) on tiny integrated outputs."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from workflow_scripts import scib_scores
from workflow_scripts.contract import to_contract
from workflow_scripts.integrate import integrate
from workflow_scripts.methods import CONTROLS, EXPRESSION_METHODS, run_unintegrated
from workflow_scripts.scib_scores import (
    BATCH_WEIGHT,
    BIO_WEIGHT,
    COLUMNS,
    REPRESENTATIONS,
    _baseline,
    _evaluate,
    add_totals,
    collect,
    representation,
    score_method,
    score_to_csv,
)

SCORED = ["unintegrated", "harmony", "combat", "scanorama"]
FAILURES = {"scvi": "RuntimeError: diverged"}


@pytest.fixture(scope="module")
def with_isolated_label(tiny_adata):
    """The tiny dataset with one cell type removed from the second batch, so it is isolated."""
    keep = ~((tiny_adata.obs["batch"] == "Batch2") & (tiny_adata.obs["cell_type"] == "Group3")).to_numpy()
    return to_contract(tiny_adata[keep].copy(), "tiny")


@pytest.fixture(scope="module")
def score_csvs(with_isolated_label, tmp_path_factory):
    root = tmp_path_factory.mktemp("results") / "tiny"
    root.mkdir()
    data_path = root / "data.h5ad"
    with_isolated_label.write_h5ad(data_path)
    csvs = []
    for method in SCORED:
        integrated = root / "integrated" / f"{method}.h5ad"
        integrate(data_path, method, integrated, {}, seed=0, threads=1)
        csvs.append(root / "scores" / f"{method}.csv")
        score_to_csv(data_path, integrated, csvs[-1])
    return csvs


@pytest.fixture(scope="module")
def collected_csv(tmp_path_factory):
    return tmp_path_factory.mktemp("out") / "scib.csv"


@pytest.fixture(scope="module")
def table(score_csvs, collected_csv):
    return collect(score_csvs, FAILURES, collected_csv, "tiny")


def test_table_layout(table):
    assert [c for c in table.columns if c != "role"] == COLUMNS
    assert (table["role"] == np.where(table["method"].isin(CONTROLS), "control", "method")).all()
    assert not ((table["scaling"] == "minmax") & (table["role"] == "control")).any()  # controls are not ranked
    metrics = table[table["category"] != "total"]
    for method in SCORED:
        rows = metrics[metrics["method"] == method]
        expected = {"embedding", "corrected_pca"} if method in EXPRESSION_METHODS else {"embedding"}
        assert set(rows["representation"]) == expected
        for name, group in rows.groupby("representation"):
            assert list(group["metric"]) == list(REPRESENTATIONS[name].batch + REPRESENTATIONS[name].bio)
    assert (metrics.loc[metrics["metric"] == "hvg_overlap", "representation"] == "corrected_pca").all()
    assert (table.loc[table["method"].isin(SCORED), "status"] == "ok").all()


def test_every_metric_in_unit_interval_or_nan_with_a_note(table):
    metrics = table[(table["category"] != "total") & (table["status"] == "ok")]
    values = metrics["value"]
    assert values.notna().any() and values.dropna().between(0, 1).all()
    assert (metrics.loc[values.isna(), "note"] != "").all()
    isolated = metrics[metrics["metric"].str.startswith("isolated_label")]
    assert isolated["value"].notna().all()  # Group3 is in one batch only


def test_no_isolated_label_is_nan_with_a_note(tiny_adata):
    data = to_contract(tiny_adata.copy(), "tiny")
    embedding = run_unintegrated(data, "batch", "cell_type", seed=0, threads=1).embedding
    rep = representation(embedding, data.obs, "batch", "cell_type", _baseline(data, "batch"))
    value, note = _evaluate("isolated_label_f1", rep)
    assert np.isnan(value) and note == "no isolated label: every label is in all 2 batches"


def test_rounding_above_one_is_clipped_but_a_real_overflow_is_an_error(monkeypatch):
    monkeypatch.setitem(scib_scores.METRICS, "nmi", lambda rep: 1.0000000000000002)  # seen from scib's NMI
    assert _evaluate("nmi", None) == (1.0, "")
    monkeypatch.setitem(scib_scores.METRICS, "nmi", lambda rep: 1.01)
    with pytest.raises(ValueError, match="outside"):
        _evaluate("nmi", None)


def test_failed_method_is_reported_not_dropped(table, collected_csv):
    failed = table[table["method"] == "scvi"]
    assert not failed.empty and failed["value"].isna().all()
    assert (failed["status"] == "failed: RuntimeError: diverged").all()
    assert {"batch_score", "bio_score", "overall"} <= set(failed["metric"])
    reread = pd.read_csv(collected_csv, keep_default_na=False, na_values={"value": [""]})
    pd.testing.assert_frame_equal(reread, table, check_dtype=False)


def test_totals_are_category_means_weighted_04_06(table):
    totals = table[table["category"] == "total"].pivot_table(
        index=["method", "representation", "scaling"], columns="metric", values="value", dropna=False
    )
    finite = totals.dropna()
    assert len(finite) >= len(SCORED) + 1  # raw and min-max rows of the methods that ran
    np.testing.assert_allclose(finite["overall"], BATCH_WEIGHT * finite["batch_score"] + BIO_WEIGHT * finite["bio_score"])
    raw = table[(table["category"] == "batch") & (table["method"] == "combat") & (table["representation"] == "embedding")]
    assert totals.loc[("combat", "embedding", "raw"), "batch_score"] == pytest.approx(raw["value"].mean())
    minmax = totals.xs("minmax", level="scaling")["overall"].dropna()
    assert minmax.between(0, 1).all() and len(minmax) >= 2


def test_minmax_over_one_method_is_nan(score_csvs):
    one = add_totals(pd.read_csv(score_csvs[0], keep_default_na=False, na_values={"value": [""]}))
    totals = one[one["category"] == "total"]
    assert totals.loc[totals["scaling"] == "minmax", "value"].isna().all()
    assert totals.loc[totals["scaling"] == "raw", "value"].notna().all()


def test_collect_refuses_a_stale_failure_record(score_csvs, tmp_path):
    with pytest.raises(ValueError, match="stale"):
        collect(score_csvs, {"harmony": "old failure"}, tmp_path / "scib.csv", "tiny")


def test_score_method_refuses_other_cells(with_isolated_label, score_csvs):
    integrated = ad.read_h5ad(score_csvs[0].parents[1] / "integrated" / "harmony.h5ad")
    with pytest.raises(ValueError, match="cells differ"):
        score_method(with_isolated_label[::-1].copy(), integrated, "tiny", "harmony")

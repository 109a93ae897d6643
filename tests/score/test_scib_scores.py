"""scIB score tables (workflow_scripts/score/scib.py) on tiny integrated outputs."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from workflow_scripts.contract import to_contract
from workflow_scripts.integrate.baseline import run_unintegrated
from workflow_scripts.integrate.run import integrate
from workflow_scripts.registry import CONTROLS, EXPRESSION_METHODS
from workflow_scripts.score import scib as scib_scores
from workflow_scripts.score.scib import (
    BATCH_WEIGHT,
    BIO_WEIGHT,
    COLUMNS,
    REPRESENTATIONS,
    _baseline,
    _evaluate,
    add_totals,
    missing_rows,
    representation,
    score_method,
)
from workflow_scripts.score.table import read_score_table, score_dataset, write_table

SCORED = ["unintegrated", "harmony", "combat", "scanorama"]
STATUSES = {"scvi": "failed: RuntimeError: diverged", "scanvi": "skipped: needs labels"}


@pytest.fixture(scope="module")
def with_isolated_label(tiny_adata):
    """The tiny dataset with one cell type removed from the second batch, so it is isolated."""
    keep = ~((tiny_adata.obs["batch"] == "Batch2") & (tiny_adata.obs["cell_type"] == "Group3")).to_numpy()
    return to_contract(tiny_adata[keep].copy(), "tiny")


@pytest.fixture(scope="module")
def outputs(with_isolated_label, tmp_path_factory):
    """(dataset path, integrated output paths) of the scored methods."""
    root = tmp_path_factory.mktemp("results") / "tiny"
    root.mkdir()
    data_path = root / "data.h5ad"
    with_isolated_label.write_h5ad(data_path)
    paths = []
    for method in SCORED:
        paths.append(root / "integrated" / f"{method}.h5ad")
        integrate(data_path, method, paths[-1], {}, seed=0, threads=1)
    return data_path, paths


@pytest.fixture(scope="module")
def collected_csv(tmp_path_factory):
    return tmp_path_factory.mktemp("out") / "scib.csv"


@pytest.fixture(scope="module")
def table(outputs, collected_csv):
    table = score_dataset(*outputs, STATUSES, score_method, missing_rows, finish=add_totals)
    write_table(table, collected_csv)
    return table


def test_table_layout(table):
    assert [c for c in table.columns if c not in ("role", "uses_labels")] == COLUMNS
    assert (table["role"] == np.where(table["method"].isin(CONTROLS), "control", "method")).all()
    assert (table["uses_labels"] == table["method"].isin(["scanvi", "label_shift", "genex"])).all()
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


@pytest.mark.parametrize("method", sorted(STATUSES))
def test_failed_or_skipped_method_is_reported_not_dropped(method, table, collected_csv):
    missing = table[table["method"] == method]
    assert not missing.empty and missing["value"].isna().all()
    assert (missing["status"] == STATUSES[method]).all()
    assert {"batch_score", "bio_score", "overall"} <= set(missing["metric"])
    reread = read_score_table(collected_csv)
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


def test_minmax_over_one_method_is_nan(outputs, with_isolated_label):
    one = add_totals(score_method(with_isolated_label, ad.read_h5ad(outputs[1][0]), "tiny", SCORED[0]))
    totals = one[one["category"] == "total"]
    assert totals.loc[totals["scaling"] == "minmax", "value"].isna().all()
    assert totals.loc[totals["scaling"] == "raw", "value"].notna().all()


def test_a_stale_failure_record_is_refused(outputs):
    with pytest.raises(ValueError, match="stale"):
        score_dataset(*outputs, {"harmony": "failed: old failure"}, score_method, missing_rows, finish=add_totals)


def test_score_method_refuses_other_cells(with_isolated_label, outputs):
    integrated = ad.read_h5ad(outputs[1][1])
    with pytest.raises(ValueError, match="cells differ"):
        score_method(with_isolated_label[::-1].copy(), integrated, "tiny", "harmony")

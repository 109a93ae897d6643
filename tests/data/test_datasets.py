"""The dataset contract check and the three ways a dataset enters: simulate, .h5ad, Splatter folder."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata._io.specs.registry import IORegistryError

from workflow_scripts.atomic import write_h5ad_atomic
from workflow_scripts.contract import DatasetError, to_contract, validate_dataset
from workflow_scripts.data.datasets import load_dataset, prepare_dataset, read_splatter_dir


@pytest.fixture
def adata(tiny_adata):
    return tiny_adata.copy()


def _break(adata, how):
    """Return a copy of ``adata`` with one contract violation."""
    a = adata.copy()
    if how == "no batch key":
        del a.obs["batch"]
    elif how == "no label key":
        del a.obs["cell_type"]
    elif how == "one batch":
        a.obs["batch"] = "only"
    elif how == "non-integer":
        a.X = a.X.copy()
        a.X.data[0] += 0.5
    elif how == "negative":
        a.X = a.X.copy()
        a.X.data[0] = -1
    elif how == "nan":
        a.X = a.X.copy()
        a.X.data[0] = np.nan
    elif how == "inf":
        a.X = a.X.copy()
        a.X.data[0] = np.inf
    elif how == "duplicated cells":
        a.obs_names = ["same"] * 2 + list(a.obs_names[2:])
    elif how == "duplicated genes":
        a.var_names = ["same"] * 2 + list(a.var_names[2:])
    elif how == "missing labels":
        a.obs["cell_type"] = a.obs["cell_type"].astype(object)
        a.obs.iloc[0, a.obs.columns.get_loc("cell_type")] = None
    return a


@pytest.mark.parametrize(
    "how, field, hint",
    [
        ("no batch key", "obs['batch']", "Set `batch_key`"),
        ("no label key", "obs['cell_type']", "Set `label_key`"),
        ("one batch", "obs['batch']", "at least 2 batches"),
        ("non-integer", "X", "counts: false"),
        ("negative", "X", "not raw counts"),
        ("nan", "X", "NaN or infinite"),
        ("inf", "X", "NaN or infinite"),
        ("duplicated cells", "obs_names", "make_unique"),
        ("duplicated genes", "var_names", "make_unique"),
        ("missing labels", "obs['cell_type']", "missing values"),
    ],
)
def test_bad_input_names_dataset_field_and_fix(adata, how, field, hint):
    with pytest.raises(DatasetError) as err:
        validate_dataset(_break(adata, how), "mydata")
    message = str(err.value)
    assert message.startswith(f"dataset 'mydata': {field}:")
    assert hint in message


def test_non_count_data_allowed_when_declared(adata):
    a = adata.copy()
    a.X = a.X.copy()
    a.X.data = a.X.data + 0.5
    validate_dataset(a, "logdata", counts=False)
    with pytest.raises(DatasetError, match="NaN"):
        validate_dataset(_break(a, "nan"), "logdata", counts=False)


def test_to_contract_normalises_storage_and_records_keys(adata):
    a = adata.copy()
    a.X = a.X.toarray().astype(np.int64)
    a.obs = a.obs.rename(columns={"batch": "sample"})
    a.obs["sample"] = a.obs["sample"].astype(str)
    out = to_contract(a, "mine", batch_key="sample", source="somewhere.h5ad")
    assert sp.isspmatrix_csr(out.X) and out.X.dtype == np.float32
    assert isinstance(out.obs["sample"].dtype, pd.CategoricalDtype)
    assert out.uns["dataset"]["batch_key"] == "sample" and out.uns["dataset"]["name"] == "mine"


def test_h5ad_import_round_trip(adata, tmp_path):
    src = tmp_path / "in.h5ad"
    adata.write_h5ad(src)
    out = prepare_dataset("mine", {"h5ad": str(src), "covariates": []}, tmp_path / "out" / "data.h5ad")
    back = ad.read_h5ad(tmp_path / "out" / "data.h5ad")
    assert back.shape == adata.shape and back.uns["dataset"]["source"] == str(src)
    np.testing.assert_array_equal(back.X.toarray(), adata.X.toarray())
    assert out.uns["dataset"]["name"] == "mine"


def test_simulated_entry_records_its_covariates(tiny_params, tmp_path):
    tiny_params["covariates"] = [{"name": "sex", "levels": ["f", "m"]}]
    a = load_dataset("sim", {"simulate": tiny_params})
    assert a.uns["dataset"]["covariates"] == ["sex"] and a.uns["dataset"]["source"] == "simulate"


def test_simulated_covariate_keeps_its_level_order(tiny_params):
    tiny_params["covariates"] = [{"name": "condition", "levels": ["control", "case"]}]
    a = load_dataset("sim", {"simulate": tiny_params})
    assert list(a.obs["condition"].cat.categories) == ["control", "case"]  # the reference first


def test_filter_drops_poor_cells_then_rare_genes_with_their_truth(tiny_params):
    tiny_params["dropout_type"] = "experiment"  # zeros, so that the filter has work
    plain = load_dataset("sim", {"simulate": tiny_params})
    detected = np.asarray((plain.X > 0).sum(axis=1)).ravel()
    min_genes = int(np.quantile(detected, 0.2))
    a = load_dataset("sim", {"simulate": tiny_params, "filter": {"min_genes": min_genes, "min_cells": 30}})
    assert a.n_obs == (detected >= min_genes).sum() and 0 < a.n_vars < plain.n_vars
    assert (np.asarray((a.X > 0).sum(axis=0)).ravel() >= 30).all()
    assert a.layers["batchfree_means"].shape == a.shape and a.var.columns.equals(plain.var.columns)


def test_failed_import_leaves_no_output(adata, tmp_path):
    src = tmp_path / "bad.h5ad"
    _break(adata, "one batch").write_h5ad(src)
    target = tmp_path / "out" / "data.h5ad"
    with pytest.raises(DatasetError, match="dataset 'bad'"):
        prepare_dataset("bad", {"h5ad": str(src)}, target)
    assert not target.exists()


def test_atomic_write_leaves_nothing_on_failure(adata, tmp_path):
    a = adata.copy()
    a.uns["unwritable"] = object()
    target = tmp_path / "data.h5ad"
    with pytest.raises(IORegistryError, match="unwritable"):
        write_h5ad_atomic(a, target)
    assert list(tmp_path.iterdir()) == []


def test_splatter_folder_import(splatter_reference):
    a = read_splatter_dir(splatter_reference)
    assert a.shape == (1000, 1000)
    assert a.obs["batch"].value_counts().to_dict() == {"Batch1": 600, "Batch2": 400}
    assert {"de_factor_Group1", "batch_factor_Batch2"} <= set(a.var.columns)
    assert a.layers["batchfree_means"].shape == a.shape
    np.testing.assert_allclose(
        a.layers["batchfree_means"].sum(1), pd.read_csv(splatter_reference / "cells_extra.csv")["ExpLibSize"], rtol=1e-5
    )
    out = to_contract(a, "splatter_reference")
    assert out.uns["dataset"]["label_key"] == "cell_type"


def test_splatter_folder_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a Splatter export"):
        read_splatter_dir(tmp_path)


def test_unknown_source(tmp_path):
    with pytest.raises(DatasetError, match="names no source"):
        load_dataset("x", {"batch_key": "batch"})

"""Issue 14: bad inputs that sent the user the wrong way. One row per case; each message must
name the field and the fix (``docs/bad_inputs.md`` lists them with the message as shown)."""

import gzip
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp
import yaml

from genex_core import GENEX
from genex_core.preprocessing import log_normalize
from workflow_scripts.config_keys import check_config_keys
from workflow_scripts.contract import to_contract
from workflow_scripts.data.datasets import load_dataset
from workflow_scripts.data.simulate import simulate

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "config" / "config.schema.yaml"
SMALL = dict(nGenes=60, batchCells=[40, 30], group_prob=[0.5, 0.5], de_prob=0.2, seed=3)
SQUARE = dict(nGenes=70, batchCells=[40, 30], group_prob=[0.5, 0.5], de_prob=0.2, seed=3)  # 70 cells x 70 genes


@pytest.fixture(scope="module")
def small():
    return simulate(SMALL)


def _with_obs(adata, column, values):
    a = adata.copy()
    a.obs[column] = values
    return a


def _one_cell_level(adata, column, base):
    values = np.asarray(base(adata), dtype=object)
    values[0] = "lonely"
    return _with_obs(adata, column, values)


def _h5ad(adata, tmp_path, name="in.h5ad") -> Path:
    path = tmp_path / name
    adata.write_h5ad(path)
    return path


def _backed(adata, tmp_path):
    return ad.read_h5ad(_h5ad(adata, tmp_path), backed="r")


def _with_x(adata, x):
    adata.X = x
    return adata


def _x_none_counts_in_layer(adata):
    out = ad.AnnData(obs=adata.obs.copy(), var=adata.var[[]].copy())
    out.layers["counts"] = adata.X.copy()
    return out


def _truncated(adata, tmp_path) -> Path:
    path = _h5ad(adata, tmp_path, "full.h5ad")
    cut = tmp_path / "cut.h5ad"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return cut


def _not_hdf5(tmp_path) -> Path:
    path = tmp_path / "table.h5ad"
    path.write_text("cell,gene,count\nc1,g1,3\n")
    return path


def _splatter_dir(params: dict, tmp_path, transpose=False, rename=None, genes=None, garbage=False) -> Path:
    """A folder in the Splatter export format, optionally broken."""
    sim = simulate(params)
    folder = tmp_path / "splatter"
    folder.mkdir()
    counts = sim.X.T if transpose else sim.X[:, :genes]
    with gzip.open(folder / "counts.mtx.gz", "wb") as handle:
        if garbage:
            handle.write(b"Cell,Gene,count\n")
        else:
            scipy.io.mmwrite(handle, sp.coo_matrix(counts))
    cells = pd.DataFrame({"Cell": sim.obs_names, "Batch": sim.obs["batch"].to_numpy(), "Group": sim.obs["cell_type"].to_numpy()})
    cells.rename(columns=rename or {}).to_csv(folder / "cells.csv", index=False)
    genes = pd.DataFrame({"Gene": sim.var_names, "BaseGeneMean": sim.var["base_gene_mean"].to_numpy()})
    genes = genes.join(pd.DataFrame({f"DEFac{g}": sim.var[f"de_factor_{g}"].to_numpy() for g in ("Group1", "Group2")}))
    genes.to_csv(folder / "genes.csv", index=False)
    return folder


def _config_with_typo():
    return {
        "datasets": {"mine": {"simulate": {"nGenes": 10, "batchCells": [5, 5]}, "covariate": ["condition"]}},
        "methods": {"unintegrated": {}},
    }


@dataclass(frozen=True)
class Case:
    name: str
    run: Callable  # (small, tmp_path) -> anything; raises for a bad input
    error: type | None  # None: the input is accepted (``check`` says what it became)
    field: str = ""
    fix: str = ""
    check: Callable | None = None


CASES = [
    Case(
        "filter removes every cell",
        lambda a, t: load_dataset("d", {"simulate": SMALL, "filter": {"min_genes": 100_000}}),
        ValueError, "filter.min_genes", "Lower `filter: min_genes` to at most",
    ),
    Case(
        "filter removes every gene",
        lambda a, t: load_dataset("d", {"simulate": SMALL, "filter": {"min_cells": 100_000}}),
        ValueError, "filter.min_cells", "Lower `filter: min_cells` to at most",
    ),
    Case("backed AnnData into the contract", lambda a, t: to_contract(_backed(a, t), "d"), ValueError, "X: is backed", "adata.to_memory()"),
    Case(
        "backed AnnData of log values into GENEX",
        lambda a, t: GENEX(_backed(_with_x(a, log_normalize(a.X)), t)),
        ValueError, "X holds non-integer values", "layer='counts'",
    ),
    Case(
        "X = None, counts in a layer",
        lambda a, t: to_contract(_x_none_counts_in_layer(a), "d"),
        ValueError, "X: is None", "Set `counts_layer:` in this dataset's config to the layer that holds the raw counts (layers: ['counts'])",
    ),
    Case(
        "a batch with one cell",
        lambda a, t: to_contract(_one_cell_level(a, "batch", lambda x: x.obs["batch"]), "d"),
        ValueError, "obs['batch']: has 1 level(s) with a single cell (batch_key): ['lonely']", "Drop those cells or merge the levels",
    ),
    Case(
        "a cell type with one cell",
        lambda a, t: to_contract(_one_cell_level(a, "cell_type", lambda x: x.obs["cell_type"]), "d"),
        ValueError, "obs['cell_type']: has 1 level(s) with a single cell (label_key)", "Drop those cells or merge the levels",
    ),
    Case(
        "a covariate level with one cell",
        lambda a, t: to_contract(_one_cell_level(a, "sex", lambda x: np.where(np.arange(x.n_obs) % 2, "f", "m")), "d", covariates=["sex"]),
        ValueError, "obs['sex']: has 1 level(s) with a single cell (covariates)", "Drop those cells or merge the levels",
    ),
    Case("covariates as a string", lambda a, t: to_contract(a, "d", covariates="cell_type"), ValueError, "covariates: is the string 'cell_type', not a list", "`covariates: [cell_type]`"),
    Case("label_key == batch_key", lambda a, t: to_contract(a, "d", label_key="batch"), ValueError, "label_key: names obs['batch'], which is also the batch_key", "Set `label_key` to the column of cell types"),
    Case("a covariate equal to the label", lambda a, t: to_contract(a, "d", covariates=["cell_type"]), ValueError, "covariates: 'cell_type' is also the label_key", "Remove 'cell_type' from `covariates`"),
    Case(
        "Splatter counts transposed",
        lambda a, t: load_dataset("d", {"splatter_dir": str(_splatter_dir(SMALL, t, transpose=True))}),
        ValueError, "counts.mtx.gz: is genes x cells (60 x 70), transposed", "the rows must be the cells of cells.csv",
    ),
    Case(
        "Splatter counts transposed, square",
        lambda a, t: load_dataset("d", {"splatter_dir": str(_splatter_dir(SQUARE, t, transpose=True))}),
        ValueError, "counts.mtx.gz: is genes x cells (70 x 70), transposed: its row means follow genes.csv's BaseGeneMean", "the rows must be the cells of cells.csv",
    ),
    Case(
        "Splatter counts of another size",
        lambda a, t: load_dataset("d", {"splatter_dir": str(_splatter_dir(SMALL, t, genes=50))}),
        ValueError, "counts.mtx.gz: is 70 x 50; cells.csv has 70 cells and genes.csv 60 genes", "of the same simulation",
    ),
    Case(
        "Splatter counts not MatrixMarket",
        lambda a, t: load_dataset("d", {"splatter_dir": str(_splatter_dir(SMALL, t, garbage=True))}),
        ValueError, "counts.mtx.gz: cannot be read as a MatrixMarket matrix", "Write it with `Matrix::writeMM` (cells x genes)",
    ),
    Case(
        "Splatter column renamed",
        lambda a, t: load_dataset("d", {"splatter_dir": str(_splatter_dir(SMALL, t, rename={"Batch": "Sample"}))}),
        ValueError, "cells.csv: has no column ['Batch']", "rename the column",
    ),
    Case(
        "truncated .h5ad",
        lambda a, t: load_dataset("d", {"h5ad": str(_truncated(a, t))}),
        ValueError, "cut.h5ad: cannot be read as an .h5ad (OSError", "a copy cut short",
    ),
    Case(
        "non-HDF5 .h5ad",
        lambda a, t: load_dataset("d", {"h5ad": str(_not_hdf5(t))}),
        ValueError, "table.h5ad: cannot be read as an .h5ad (OSError", "Point `h5ad:` at a complete AnnData file",
    ),
    Case(
        "counts_layer names a missing layer",
        lambda a, t: load_dataset("d", {"h5ad": str(_h5ad(a, t)), "counts_layer": "raw"}),
        ValueError, "counts_layer: names layers['raw'], which the data do not have", "Set `counts_layer` to the layer that holds the raw counts",
    ),
    Case(
        "counts_layer with counts: false",
        lambda a, t: load_dataset("d", {"h5ad": str(_h5ad(a, t)), "counts_layer": "counts", "counts": False}),
        ValueError, "counts_layer: names layers['counts'] as raw counts", "Remove `counts: false`",
    ),
    Case(
        "API: covariate_keys as a string",
        lambda a, t: GENEX(_with_obs(a, "sex", np.where(np.arange(a.n_obs) % 2, "f", "m")), covariate_keys="sex"),
        None, check=lambda model: model.registry.covariate_keys == ("sex",),
    ),
    Case("API: device='gpu'", lambda a, t: GENEX(a).train(device="gpu", max_epochs=1), ValueError, "device='gpu' is not a device (a GPU is 'cuda')", "use 'auto'"),
    Case(
        "API: duplicated gene names",
        lambda a, t: GENEX(ad.AnnData(X=a.X, obs=a.obs, var=pd.DataFrame(index=["g"] * 2 + list(a.var_names[2:])))),
        ValueError, "adata.var_names has 1 duplicated gene names, e.g. ['g']", "adata.var_names_make_unique()",
    ),
    Case(
        "unknown config key",
        lambda a, t: check_config_keys(_config_with_typo(), SCHEMA),
        ValueError, "unknown key 'covariate' in datasets.mine", "Did you mean 'covariates'? Rename or remove it; allowed there: simulate, h5ad",
    ),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_names_the_field_and_the_fix(case, small, tmp_path):
    if case.error is None:
        assert case.check(case.run(small.copy(), tmp_path))
        return
    with pytest.raises(case.error) as err:
        case.run(small.copy(), tmp_path)
    message = str(err.value)
    assert case.field in message, message
    assert case.fix in message, message


def test_counts_layer_moves_the_counts_into_x(small, tmp_path):
    """An h5ad with log values in X and counts in a layer needs no rewriting: `counts_layer`."""
    user = small.copy()
    user.layers["counts"] = user.X.copy()
    user.X = log_normalize(user.X)
    data = load_dataset("d", {"h5ad": str(_h5ad(user, tmp_path)), "counts_layer": "counts"})
    np.testing.assert_array_equal(data.X.toarray(), small.X.toarray())
    assert data.uns["dataset"]["counts"] and "counts" not in data.layers
    assert "layers['counts']" in data.uns["dataset"]["source"]


def test_a_real_splatter_folder_is_not_called_transposed(splatter_reference):
    data = load_dataset("ref", {"splatter_dir": str(splatter_reference)})  # square, 1000 x 1000
    assert data.shape == (1000, 1000)


def test_unknown_config_key_through_snakemake_names_the_key_not_the_schema(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(_config_with_typo()))
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--dry-run", "--configfile", str(config), "--directory", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert "unknown key 'covariate' in datasets.mine. Did you mean 'covariates'?" in output, output[-3000:]
    assert "$schema" not in output and "batch_interaction_prob" not in output  # not the whole schema


def test_square_splatter_folder_in_the_right_orientation_is_read(tmp_path):
    folder = _splatter_dir(SQUARE, tmp_path)
    assert load_dataset("d", {"splatter_dir": str(folder)}).shape == (70, 70)
    shutil.rmtree(folder)

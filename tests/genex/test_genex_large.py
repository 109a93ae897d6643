"""GENEX on data too large for memory (issue 18): training from a backed AnnData gives what
training from memory gives, and the corrected values streamed to disk equal the in-memory ones.

Tiny data written to ``tmp_path``; each test takes a second or two.
"""

import anndata as ad
import h5py
import numpy as np
import pytest
import scipy.sparse as sp

from genex_core import GENEX
from genex_core.data import BackedCounts, check_counts
from workflow_scripts.data.simulate import simulate

SMALL = dict(hidden=(32, 16), latent=8, embedding_dim=4)
FAST = dict(max_epochs=2, batch_size=32, seed=0, progress=False)


@pytest.fixture(scope="module")
def adata():
    params = dict(nGenes=60, batchCells=[40, 30], group_prob=[0.6, 0.4], de_prob=0.3, de_facLoc=0.5, batch_facLoc=0.3, seed=3)
    data = simulate(params)
    del data.layers["batchfree_means"], data.layers["batchfree_counts"]
    return data


@pytest.fixture
def backed(adata, tmp_path):
    path = tmp_path / "counts.h5ad"
    adata.write_h5ad(path)
    data = ad.read_h5ad(path, backed="r")
    yield data
    data.file.close()


@pytest.mark.parametrize("label_key", ["cell_type", None])
def test_backed_training_equals_in_memory(adata, backed, label_key):
    memory = GENEX(adata, label_key=label_key, **SMALL)
    memory.train(**FAST)
    disk = GENEX(backed, label_key=label_key, **SMALL)
    assert isinstance(disk._counts, BackedCounts)
    disk.train(**FAST)
    np.testing.assert_array_equal(disk.get_corrected_expression(), memory.get_corrected_expression())
    np.testing.assert_array_equal(disk.get_latent_representation(), memory.get_latent_representation())
    # a backed AnnData given for inference to a model trained in memory
    np.testing.assert_array_equal(memory.get_corrected_expression(backed), memory.get_corrected_expression())


def test_backed_rows_in_the_order_asked(adata, backed):
    counts = BackedCounts(backed.X)
    for idx in ([5, 3, 3, 60, 0], [10, 11, 12], [7]):
        np.testing.assert_array_equal(counts[np.array(idx)].toarray(), adata.X[idx].toarray())


def test_backed_log_values_refused_on_a_sample(adata, tmp_path):
    logged = adata.copy()
    logged.X = sp.csr_matrix(np.log1p(adata.X.toarray()))
    logged.write_h5ad(tmp_path / "log.h5ad")
    with pytest.raises(ValueError, match=r"^X holds non-integer values.*cells checked, read from .*layer='counts'"):
        GENEX(ad.read_h5ad(tmp_path / "log.h5ad", backed="r"))


def test_in_memory_check_is_chunked_and_exact(adata, monkeypatch):
    import genex_core.data as data_module

    monkeypatch.setattr(data_module, "CHECK_VALUES", 7)  # many chunks
    check_counts(adata.X)
    bad = adata.X.copy()
    bad.data[-1], bad.data[3] = -1, -2
    with pytest.raises(ValueError, match=r"^X holds 2 negative values"):
        check_counts(bad)


@pytest.fixture(scope="module")
def trained(adata):
    model = GENEX(adata, **SMALL)
    model.train(**FAST)
    return model


def test_streamed_outputs_equal_in_memory(trained, adata, tmp_path):
    full = trained.get_corrected_expression()
    half = trained.get_corrected_expression(dtype=np.float16)
    assert half.dtype == np.float16
    np.testing.assert_allclose(half, full, rtol=1e-3, atol=1e-3)

    path = trained.write_corrected(tmp_path / "corrected.h5ad", batch_size=16)
    written = ad.read_h5ad(path)
    assert written.obs_names.equals(adata.obs_names) and written.var_names.equals(adata.var_names)
    np.testing.assert_array_equal(written.layers["corrected"], full)
    with h5py.File(path) as f:  # chunked on disk, readable a chunk at a time
        assert f["layers/corrected"].chunks == (16, adata.n_vars)
        np.testing.assert_array_equal(f["layers/corrected"][10:20], full[10:20])

    path16 = trained.write_corrected(tmp_path / "corrected16.h5ad", layer="genex", dtype=np.float16)
    values = ad.read_h5ad(path16).layers["genex"]
    assert values.dtype == np.float16
    np.testing.assert_allclose(values, full, rtol=1e-3, atol=1e-3)

    with pytest.raises(FileExistsError, match="overwrite=True"):
        trained.write_corrected(path)
    assert not list(tmp_path.glob(".*.tmp"))


def test_streamed_to_zarr_and_out(trained, tmp_path):
    zarr = pytest.importorskip("zarr")
    full = trained.get_corrected_expression()
    path = trained.write_corrected(tmp_path / "corrected.zarr", dtype="float16", batch_size=32)
    array = zarr.open_array(str(path), mode="r")
    assert array.dtype == np.float16 and array.chunks == (32, full.shape[1])
    np.testing.assert_allclose(array[:], full, rtol=1e-3, atol=1e-3)

    memmap = np.lib.format.open_memmap(tmp_path / "corrected.npy", mode="w+", dtype=np.float32, shape=full.shape)
    assert trained.get_corrected_expression(out=memmap) is memmap
    np.testing.assert_array_equal(memmap, full)
    with pytest.raises(ValueError, match="out has shape"):
        trained.get_corrected_expression(out=np.empty((3, 3), dtype=np.float32))

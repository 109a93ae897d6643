"""The Splat simulator: determinism, storage form and consistency of its ground truth."""

import hashlib

import numpy as np
import pytest
import scipy.sparse as sp

from genex_core.preprocessing import log_normalize
from workflow_scripts.atomic import write_h5ad_atomic
from workflow_scripts.data.simulate import SplatParams, lognormal_factors, simulate


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_identical_file_and_thread_count_does_not_matter(tmp_path, tiny_params):
    params = dict(tiny_params, batchCells=[3000, 1500])  # several chunks of cells
    write_h5ad_atomic(simulate(params, n_threads=1), tmp_path / "a.h5ad")
    write_h5ad_atomic(simulate(params, n_threads=2), tmp_path / "b.h5ad")
    write_h5ad_atomic(simulate(dict(params, seed=12)), tmp_path / "c.h5ad")
    assert _sha(tmp_path / "a.h5ad") == _sha(tmp_path / "b.h5ad")
    assert _sha(tmp_path / "a.h5ad") != _sha(tmp_path / "c.h5ad")


def test_storage_form(tiny_adata):
    a = tiny_adata
    assert a.shape == (250, 300)
    assert sp.isspmatrix_csr(a.X) and a.X.dtype == np.float32
    assert np.array_equal(a.X.data, np.round(a.X.data)) and (a.X.data > 0).all()
    assert sp.isspmatrix_csr(a.layers["batchfree_counts"])
    assert isinstance(a.layers["batchfree_means"], np.ndarray) and a.layers["batchfree_means"].dtype == np.float32
    assert a.obs["batch"].value_counts().to_dict() == {"Batch1": 150, "Batch2": 100}
    assert set(a.obs["cell_type"].cat.categories) == {"Group1", "Group2", "Group3"}
    assert a.uns["simulation"]["seed"] == 11
    # expected library size is preserved by the batch-free means
    np.testing.assert_allclose(a.layers["batchfree_means"].sum(1), a.obs["exp_lib_size"], rtol=1e-4)


def test_batchfree_means_carry_no_batch_factor(tiny_adata):
    """Within a cell type, the batch-free expression profile is the same in every batch and
    equals gene mean x DE factor; the batched counts differ between batches by the factors."""
    a = tiny_adata
    profile = a.layers["batchfree_means"] / a.layers["batchfree_means"].sum(1, keepdims=True)
    for group in a.obs["cell_type"].cat.categories:
        cells = (a.obs["cell_type"] == group).to_numpy()
        expected = a.var["gene_mean"] * a.var[f"de_factor_{group}"]
        np.testing.assert_allclose(profile[cells], np.tile(expected / expected.sum(), (cells.sum(), 1)), rtol=1e-4)

    # pooled log ratio between batches follows the log ratio of batch factors in X only
    true_lr = np.log(a.var["batch_factor_Batch1"] / a.var["batch_factor_Batch2"]).to_numpy()
    expressed = a.var["gene_mean"].to_numpy() > 1

    def observed_lr(matrix):
        x = sp.csr_matrix(matrix)
        b1 = (a.obs["batch"] == "Batch1").to_numpy()
        m1 = np.asarray(x[b1].mean(0)).ravel() / a.obs["exp_lib_size"][b1].mean()
        m2 = np.asarray(x[~b1].mean(0)).ravel() / a.obs["exp_lib_size"][~b1].mean()
        return np.log(m1 + 1e-9) - np.log(m2 + 1e-9)

    r_batched = np.corrcoef(observed_lr(a.X)[expressed], true_lr[expressed])[0, 1]
    r_free = np.corrcoef(observed_lr(a.layers["batchfree_counts"])[expressed], true_lr[expressed])[0, 1]
    assert r_batched > 0.8
    assert abs(r_free) < 0.3


def test_de_share_matches_de_prob(tiny_params):
    a = simulate(dict(tiny_params, nGenes=4000, batchCells=[50, 50], de_prob=0.1))
    for group in a.obs["cell_type"].cat.categories:
        share = (a.var[f"de_factor_{group}"] != 1).mean()
        assert abs(share - 0.1) < 3 * np.sqrt(0.1 * 0.9 / 4000)


def test_lognormal_factors_follow_splatter():
    rng = np.random.default_rng(0)
    f = lognormal_factors(rng, 20000, 0.2, 0.5, 0.5, 0.3)
    assert abs((f != 1).mean() - 0.2) < 0.01
    selected = f[f != 1]
    assert abs((selected < 1).mean() - 0.5) < 0.03  # down-regulation share
    np.testing.assert_allclose(np.median(np.abs(np.log(selected))), 0.5, atol=0.03)


def test_confounded_composition(tiny_params):
    a = simulate(dict(tiny_params, batchCells=[2000, 2000], group_prob=[[0.8, 0.1, 0.1], [0.1, 0.1, 0.8]]))
    share = a.obs.groupby("batch", observed=True)["cell_type"].value_counts(normalize=True)
    assert abs(share["Batch1"]["Group1"] - 0.8) < 0.03
    assert abs(share["Batch2"]["Group3"] - 0.8) < 0.03


def test_batch_by_cell_type_interaction(tiny_params):
    a = simulate(dict(tiny_params, batch_interaction_prob=0.3))
    inter = a.var["batch_interaction"].to_numpy()
    assert 0.2 < inter.mean() < 0.4
    glob = a.var["batch_factor_Batch1"].to_numpy()
    g1, g2 = a.var["batch_factor_Batch1__Group1"].to_numpy(), a.var["batch_factor_Batch1__Group2"].to_numpy()
    np.testing.assert_array_equal(g1[~inter], glob[~inter])
    assert (g1[inter] != g2[inter]).all()


def test_covariates_truth(tiny_params):
    cov = [
        {"name": "condition", "levels": ["control", "case"], "gene_prob": 0.2, "facLoc": 1.0, "per_cell_type": True},
        {"name": "sex", "levels": ["female", "male"], "gene_prob": 0.1, "facLoc": 1.0},
    ]
    a = simulate(dict(tiny_params, covariates=cov))
    assert set(a.obs["condition"].cat.categories) == {"control", "case"}
    assert (a.var["condition_factor_control__Group1"] == 1).all()  # reference level
    assert (a.var["condition_factor_case__Group1"] != a.var["condition_factor_case__Group2"]).any()  # cell-type specific
    assert (a.var["sex_factor_female"] == 1).all() and (a.var["sex_factor_male"] != 1).mean() > 0.05
    # covariates are biology: they live in the batch-free truth
    genes = (a.var["sex_factor_male"] > 2).to_numpy()
    x = log_normalize(a.layers["batchfree_means"])
    male = (a.obs["sex"] == "male").to_numpy()
    assert (x[male][:, genes].mean(0) > x[~male][:, genes].mean(0)).all()


def test_dropout_adds_zeros(tiny_params):
    plain = simulate(tiny_params)
    dropped = simulate(dict(tiny_params, dropout_type="experiment", dropout_mid=3.0, dropout_shape=-1.0))
    assert 1 - dropped.X.nnz / np.prod(dropped.shape) > 1 - plain.X.nnz / np.prod(plain.shape) + 0.1


def test_rm_effect_gives_unit_batch_factors(tiny_params):
    a = simulate(dict(tiny_params, batch_rmEffect=True))
    assert (a.var["batch_factor_Batch1"] == 1).all()


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(unknown_param=1), "unknown simulation parameters"),
        (dict(group_prob=[0.5, 0.4]), "sum to 1"),
        (dict(group_prob=[[1.0], [0.5, 0.5], [1.0]]), "one per batch"),
        (dict(batch_facLoc=[0.1, 0.2, 0.3]), "batch_facLoc has 3 values"),
        (dict(dropout_type="cells"), "dropout_type must be one of"),
        (dict(lib_loc=[11.0, 10.0, 9.0]), "lib_loc has 3 values"),
    ],
)
def test_bad_parameters(bad, message, tiny_params):
    with pytest.raises(ValueError, match=message):
        simulate(dict(tiny_params, **bad))


def test_params_round_trip_through_uns(tiny_params):
    params = SplatParams.from_dict(dict(tiny_params, covariates=[{"name": "sex", "levels": ["f", "m"]}]))
    stored = params.to_dict()
    assert stored["seed"] == tiny_params["seed"] and stored["covariates"]["sex"]["levels"] == ["f", "m"]
    assert "method" not in stored and "path_nSteps" not in stored  # groups: path parameters play no part


def test_no_batch_effect_truth_is_the_raw_expectation(tiny_params):
    """Without a batch effect the truth is what was measured: batch-free means equal the
    expected means of X, and the batch-free counts are X itself."""
    a = simulate(dict(tiny_params, batch_facLoc=0, batch_facScale=0, dropout_type="experiment", dropout_mid=1.0))
    assert (a.var.filter(like="batch_factor_") == 1).all().all()
    groups = a.obs["cell_type"].to_numpy()
    var = a.var
    cells = zip(groups, a.obs["batch"], strict=False)
    profile = np.stack([var["gene_mean"] * var[f"de_factor_{g}"] * var[f"batch_factor_{b}"] for g, b in cells])
    expected_x = a.obs["exp_lib_size"].to_numpy()[:, None] * profile / profile.sum(1, keepdims=True)
    np.testing.assert_allclose(a.layers["batchfree_means"], expected_x, rtol=1e-6)
    assert (a.layers["batchfree_counts"] != a.X).nnz == 0
    # a batch without effect next to one with: only the cells of the first measured their truth
    b = simulate(dict(tiny_params, batch_facLoc=[0, 0.3], batch_facScale=[0, 0.1]))
    first = (b.obs["batch"] == "Batch1").to_numpy()
    assert (b.layers["batchfree_counts"][first] != b.X[first]).nnz == 0
    assert (b.layers["batchfree_counts"][~first] != b.X[~first]).nnz > 0


def test_per_batch_technical_parameters_that_agree_change_nothing(tiny_params):
    plain = simulate(dict(tiny_params, dropout_type="experiment", dropout_mid=2.0, dropout_shape=-1.0))
    per_batch = simulate(
        dict(
            tiny_params,
            lib_loc=[11.0, 11.0],
            lib_scale=[0.2, 0.2],
            dropout_type="batch",
            dropout_mid=[2.0, 2.0],
            dropout_shape=[-1.0, -1.0],
        )
    )
    for m in ("batchfree_counts", "batchfree_means"):
        assert (sp.csr_matrix(plain.layers[m]) != sp.csr_matrix(per_batch.layers[m])).nnz == 0
    assert (plain.X != per_batch.X).nnz == 0
    assert "batchfree_lib_size" not in per_batch.obs


def test_platform_batches_differ_in_depth_and_dropout_but_the_truth_does_not(tiny_params):
    loc, scale, mid = [11.0, 10.0], [0.2, 0.3], [0.0, 1.0]
    a = simulate(
        dict(
            tiny_params,
            batchCells=[1000, 1000],
            lib_loc=loc,
            lib_scale=scale,
            dropout_type="batch",
            dropout_mid=mid,
            dropout_shape=[-1.0, -1.0],
        )
    )
    b1 = (a.obs["batch"] == "Batch1").to_numpy()

    def zeros(m, cells):
        return 1 - m[cells].nnz / (cells.sum() * m.shape[1])

    lib = a.obs["exp_lib_size"].to_numpy()
    assert abs(np.log(lib[b1]).mean() - 11.0) < 0.03 and abs(np.log(lib[~b1]).mean() - 10.0) < 0.03
    assert zeros(a.X, ~b1) > zeros(a.X, b1) + 0.1
    free = a.layers["batchfree_counts"]
    assert abs(zeros(free, ~b1) - zeros(free, b1)) < 0.01
    # batch-free library size: the cell's deviate at the mean location and scale of the batches
    z = (np.log(lib) - np.where(b1, loc[0], loc[1])) / np.where(b1, scale[0], scale[1])
    np.testing.assert_allclose(a.obs["batchfree_lib_size"], np.exp(np.mean(loc) + np.mean(scale) * z), rtol=1e-10)
    np.testing.assert_allclose(a.layers["batchfree_means"].sum(1), a.obs["batchfree_lib_size"], rtol=1e-4)


PATHS = dict(
    nGenes=400, batchCells=[200, 200], group_prob=[0.5, 0.5], de_prob=0.3, de_facLoc=0.5, method="paths", path_nSteps=40, seed=5
)


def test_paths_are_continuous(tmp_path):
    a = simulate(PATHS)
    assert set(a.obs["cell_type"].cat.categories) == {"Path1", "Path2"}
    assert a.obs["step"].min() == 1 and a.obs["step"].max() == 40
    means = a.layers["batchfree_means"] / a.obs["exp_lib_size"].to_numpy()[:, None]
    for path in ("Path1", "Path2"):
        cells = (a.obs["cell_type"] == path).to_numpy()
        step = a.obs["step"].to_numpy()[cells]
        de = a.var[f"de_factor_{path}"].to_numpy()
        linear = a.var[f"sigma_factor_{path}"].to_numpy() == 0
        genes = np.flatnonzero(linear & (np.abs(np.log(de)) > 0.5))
        assert genes.size > 10
        for j in genes:  # a strong DE gene moves steadily from the origin to the path's end
            r = np.corrcoef(step, means[cells, j])[0, 1] * np.sign(np.log(de[j]))
            assert r > 0.95
        # the path ends at its DE factor; cells at one step share a profile
        end = cells & (a.obs["step"] == 40).to_numpy()
        target = a.var["gene_mean"] * de
        np.testing.assert_allclose(means[end], np.tile(target / target.sum(), (end.sum(), 1)), rtol=1e-4)
    write_h5ad_atomic(a, tmp_path / "a.h5ad")
    write_h5ad_atomic(simulate(PATHS, n_threads=2), tmp_path / "b.h5ad")
    assert _sha(tmp_path / "a.h5ad") == _sha(tmp_path / "b.h5ad")
    assert a.uns["simulation"]["method"] == "paths" and a.uns["simulation"]["path_nSteps"] == 40


def test_paths_from_a_path_inherit_its_factors():
    a = simulate(dict(PATHS, group_prob=[0.4, 0.3, 0.3], path_from=[0, 1, 1]))
    first, second = a.var["de_factor_Path1"].to_numpy(), a.var["de_factor_Path2"].to_numpy()
    shared = (first != 1) & (second == first)  # genes without a DE factor of their own on Path2
    assert shared.sum() > 0.5 * (first != 1).sum()


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(path_from=[0, 2]), "cannot begin at itself"),
        (dict(path_from=[2, 1]), "origin"),
        (dict(path_from=[0, 3]), "path_from must hold integers"),
        (dict(group_prob=[0.4, 0.3, 0.3], path_from=[0, 3, 2]), "cycles"),
        (dict(path_skew=1.5), "path_skew"),
        (dict(method="single"), "method must be"),
    ],
)
def test_bad_path_parameters(bad, message):
    with pytest.raises(ValueError, match=message):
        simulate(dict(PATHS, **bad))

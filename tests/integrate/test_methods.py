"""Integration methods (workflow_scripts/integrate/methods.py) and their rule entry point (integrate.py)."""

import json
from types import SimpleNamespace

import anndata as ad
import numpy as np
import pytest

from genex_core import GENEX
from genex_core.preprocessing import log_normalize
from workflow_scripts.contract import to_contract
from workflow_scripts.data.simulate import simulate
from workflow_scripts.integrate import run as integrate_module
from workflow_scripts.integrate.baseline import run_unintegrated
from workflow_scripts.integrate.methods import run_harmony
from workflow_scripts.integrate.run import failure_record_path, integrate, runner
from workflow_scripts.registry import EXPRESSION_METHODS, METHODS
from workflow_scripts.score.scib import add_totals, score_method
from workflow_scripts.score.table import read_failures

FAST_PARAMS = {
    "scvi": {"max_epochs": 2}, "scanvi": {"max_epochs": 2},
    "genex": {"max_epochs": 5}, "genex_label_free": {"max_epochs": 5}, "genex_published": {"max_epochs": 2},
}  # fmt: skip
# Cell types dominate a moderate batch effect: the regime where Harmony corrects (FINDINGS.md).
HARMONY_SIM = dict(
    nGenes=300, batchCells=[150, 150], group_prob=[0.4, 0.35, 0.25], de_prob=0.3, de_facLoc=1.0, batch_facLoc=0.15, seed=3
)
MARGIN = 0.2


@pytest.fixture(scope="module")
def shuffled(tiny_adata):
    """The tiny dataset in contract form with its cells shuffled, so batches are not contiguous
    (Scanorama needs contiguous batches; its output must still come back in the input order)."""
    order = np.random.default_rng(0).permutation(tiny_adata.n_obs)
    return to_contract(tiny_adata[order].copy(), "tiny")


@pytest.fixture(scope="module")
def results(shuffled, tmp_path_factory):
    """Every registered method on the tiny data; a method that starts from another's model
    (scANVI from scVI) gets that model as saved."""
    out, saved = {}, tmp_path_factory.mktemp("models")
    for name in sorted(METHODS, key=lambda m: METHODS[m].starts_from is not None):
        start = METHODS[name].starts_from
        extra = {"pretrained": saved / start} if start else {}
        out[name] = runner(name)(shuffled, "batch", "cell_type", seed=0, threads=1, **FAST_PARAMS.get(name, {}), **extra)
        if any(m.starts_from == name for m in METHODS.values()):
            out[name].model.save(saved / name, overwrite=True)
    return out


@pytest.mark.parametrize("method", sorted(METHODS))
def test_method_shapes_and_scale(method, results, shuffled):
    result = results[method]
    assert result.embedding.shape[0] == shuffled.n_obs and 1 < result.embedding.shape[1] < shuffled.n_vars
    assert np.isfinite(result.embedding).all()
    assert result.version and None not in result.params.values()
    if method not in EXPRESSION_METHODS:
        assert result.corrected is None
        return
    corrected = result.corrected.toarray() if hasattr(result.corrected, "toarray") else result.corrected
    assert corrected.shape == shuffled.shape and np.isfinite(corrected).all()  # tiny data: all genes are modelled
    if method in ("scvi", "scanvi", "truth", "shuffled"):
        return  # scVI/scANVI: two epochs decode near-average cells (scale checked below); controls are other cells by design
    lognorm = log_normalize(shuffled.X).toarray()
    # Same cell order and log1p(CP10k) scale as the input: each corrected cell is far closer to its
    # own input profile than to another cell's.
    own = np.linalg.norm(corrected - lognorm, axis=1).mean()
    other = np.linalg.norm(corrected - np.roll(lognorm, 1, axis=0), axis=1).mean()
    assert own < 0.8 * other


def test_unintegrated_and_scvi_scales(results, shuffled):
    np.testing.assert_allclose(results["unintegrated"].corrected.toarray(), log_normalize(shuffled.X).toarray())
    for method in ("scvi", "scanvi"):
        np.testing.assert_allclose(np.expm1(results[method].corrected).sum(axis=1), 1e4, rtol=1e-3)


@pytest.mark.parametrize("method", ["unintegrated", "harmony", "combat", "scanorama", "label_shift"])
def test_deterministic_for_a_seed(method, shuffled, results):
    again = runner(method)(shuffled, "batch", "cell_type", seed=0, threads=1)
    np.testing.assert_allclose(again.embedding, results[method].embedding, rtol=1e-5, atol=1e-5)


def _scores(data, embedding):
    integrated = ad.AnnData(obs=data.obs.copy())
    integrated.obsm["X_emb"] = embedding
    table = add_totals(score_method(data, integrated, "sim", "m"))
    raw = table[table["scaling"] == "raw"].set_index("metric")["value"]
    return raw["batch_score"], raw["bio_score"]


def _harmony_beats_unintegrated(data, unintegrated_scores, harmony_embedding) -> bool:
    """Harmony removes batch (batch score up by MARGIN) without losing biology."""
    batch_u, bio_u = unintegrated_scores
    batch_h, bio_h = _scores(data, harmony_embedding)
    return batch_h > batch_u + MARGIN and bio_h > bio_u - MARGIN / 2


@pytest.fixture(scope="module")
def cell_types_dominate():
    return to_contract(simulate(HARMONY_SIM), "sim")


@pytest.fixture(scope="module")
def unintegrated_scores(cell_types_dominate):
    return _scores(cell_types_dominate, run_unintegrated(cell_types_dominate, "batch", "cell_type", seed=0, threads=1).embedding)


def test_harmony_beats_unintegrated(cell_types_dominate, unintegrated_scores):
    harmony = run_harmony(cell_types_dominate, "batch", "cell_type", seed=0, threads=1).embedding
    assert _harmony_beats_unintegrated(cell_types_dominate, unintegrated_scores, harmony)


@pytest.mark.parametrize("broken", ["does_nothing", "transposed_then_reshaped"])
def test_harmony_check_catches_a_broken_harmony(broken, cell_types_dominate, unintegrated_scores, monkeypatch):
    """The check above has power: a Harmony that returns its input, or a Z_corr whose orientation
    was mishandled (transposed, then forced back into shape), fails it."""
    import harmonypy

    def fake(data_mat, *args, **kwargs):
        z = np.asarray(data_mat) if broken == "does_nothing" else np.asarray(data_mat).T.reshape(data_mat.shape)
        return SimpleNamespace(Z_corr=z)

    monkeypatch.setattr(harmonypy, "run_harmony", fake)
    harmony = run_harmony(cell_types_dominate, "batch", "cell_type", seed=0, threads=1).embedding
    assert not _harmony_beats_unintegrated(cell_types_dominate, unintegrated_scores, harmony)


@pytest.fixture
def data_path(tmp_path, shuffled):
    path = tmp_path / "tiny" / "data.h5ad"
    path.parent.mkdir()
    shuffled.write_h5ad(path)
    return path


@pytest.mark.parametrize("method", ["harmony", "combat"])
def test_integrate_writes_the_output_contract(method, data_path, shuffled, tmp_path):
    output = tmp_path / "tiny" / "integrated" / f"{method}.h5ad"
    integrate(data_path, method, output, {"n_comps": 10}, seed=1, threads=1)
    out = ad.read_h5ad(output)
    assert out.X is None and out.obs.equals(shuffled.obs) and out.var.equals(shuffled.var)
    assert out.obsm["X_emb"].shape == (shuffled.n_obs, 10) and out.obsm["X_emb"].dtype == np.float32
    assert list(out.layers) == (["corrected"] if method in EXPRESSION_METHODS else [])
    if method in EXPRESSION_METHODS:
        assert out.layers["corrected"].dtype == np.float32 and out.layers["corrected"].shape == shuffled.shape
    info = out.uns["method"]
    assert set(info) == {
        "name",
        "version",
        "params",
        "seed",
        "wall_time_s",
        "peak_memory_mb",
        "returns_expression",
        "uses_labels",
    }
    assert info["name"] == method and info["seed"] == 1 and info["params"]["n_comps"] == 10
    assert info["wall_time_s"] > 0 and info["peak_memory_mb"] > 0
    assert bool(info["returns_expression"]) == (method in EXPRESSION_METHODS)
    assert out.uns["dataset"]["batch_key"] == "batch"
    assert not failure_record_path(output).exists()


def test_failing_method_leaves_a_record_and_no_output(data_path, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("diverged")

    monkeypatch.setattr(integrate_module, "runner", lambda method: broken)
    output = tmp_path / "tiny" / "integrated" / "broken.h5ad"
    with pytest.raises(RuntimeError, match="diverged"):
        integrate(data_path, "broken", output, {}, seed=0, threads=1)
    assert not output.exists()
    record = json.loads(failure_record_path(output).read_text())
    assert record["method"] == "broken" and record["dataset"] == "tiny"
    assert record["reason"] == "RuntimeError: diverged" and record["wall_time_s"] >= 0
    assert read_failures([failure_record_path(output)]) == {"broken": "RuntimeError: diverged"}


def test_unknown_method_and_parameter_are_clear_errors(data_path, tmp_path):
    with pytest.raises(ValueError, match="unknown integration method 'magic'"):
        integrate(data_path, "magic", tmp_path / "magic.h5ad", {}, seed=0, threads=1)
    assert "ValueError" in json.loads(failure_record_path(tmp_path / "magic.h5ad").read_text())["reason"]
    with pytest.raises(TypeError, match="n_pcs"):
        integrate(data_path, "harmony", tmp_path / "harmony.h5ad", {"n_pcs": 10}, seed=0, threads=1)


@pytest.mark.parametrize("method, label_key", [("genex", "cell_type"), ("genex_label_free", None)])
def test_genex_with_and_without_labels(method, label_key, data_path, tmp_path):
    model_dir = tmp_path / "genex_model"
    out = integrate(data_path, method, tmp_path / "genex.h5ad", {"max_epochs": 2}, seed=0, threads=1, model_dir=model_dir)
    assert out.uns["method"]["params"]["setup_args"].get("label_key") == label_key
    assert bool(out.uns["method"]["uses_labels"]) == (label_key is not None)
    assert out.layers["corrected"].shape == (out.n_obs, out.n_vars)
    reloaded = GENEX.load(model_dir, ad.read_h5ad(data_path))  # what the explanations read
    np.testing.assert_allclose(reloaded.get_corrected_expression(), out.layers["corrected"], rtol=1e-5, atol=1e-5)


def test_a_model_is_saved_only_by_methods_that_return_one(data_path, tmp_path):
    with pytest.raises(RuntimeError, match="returned no model"):
        integrate(data_path, "unintegrated", tmp_path / "u.h5ad", {}, seed=0, threads=1, model_dir=tmp_path / "m")

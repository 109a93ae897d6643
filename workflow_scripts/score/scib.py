"""scIB metrics of each method's output, as one tidy table per dataset.

Every metric is the scib (1.1) implementation, except kBET and LISI, which are scib-metrics'
(as its ``Benchmarker`` computes them): scib's kBET calls R, which this project does not need, and
its graph LISI is a per-cell Python loop that cost ~25 s of each dataset's scoring here.
scib's Leiden clusterings run with scanpy's announced defaults (igraph, 2 iterations): leidenalg
to convergence cost ~20 s more (:func:`_leiden_future_defaults`). On the default benchmark the two
changes moved overall scores by 0.007 on average (at most 0.025) on `interaction` and kept each method's rank
within its group. Nothing here re-implements a metric either library provides.

Each method is scored on up to two *representations*:

``embedding``
    its ``obsm["X_emb"]`` (every method);
``corrected_pca``
    PCA (50 components, capped) of its unscaled ``layers["corrected"]`` (methods that return
    expression), the GENEX paper's protocol; only this one scores HVG overlap.

Per representation, nearest neighbours are searched once (exact, scikit-learn, 90 per cell): LISI
uses all 90 (perplexity 30), kBET the first 50, as scib's kBET does, and the first 15 make the
graph scib's graph metrics use (graph connectivity, Leiden clustering). The NMI-optimal Leiden
clustering (scib's resolutions 0.2..2.0) is computed once and shared by NMI and ARI. The
baseline of PCR comparison and HVG overlap is the dataset's own log1p(CP10k) data (all genes).

Large data: the metrics whose cost grows with the square of the number of cells
(:data:`QUADRATIC`: the silhouettes, all-pairs distances) are scored on a seeded subsample of
:data:`SUBSAMPLE_CELLS` cells when there are more, stratified by (batch, cell type) so that every
such group keeps cells (at least :data:`MIN_GROUP_CELLS`, or all it has) and the isolated labels
stay the same; the row's ``note`` says so and on how many cells. Every other metric uses all
cells (neighbour search, LISI, kBET, graph connectivity, Leiden clusterings, PCR, HVG overlap).

Table columns: ``dataset, method, representation, category, metric, scaling, value, note,
status``. ``category`` is ``batch``/``bio`` for metrics and ``total`` for the rows
:func:`add_totals` appends; ``scaling`` is ``raw`` for metrics and ``raw``/``minmax`` for totals;
``note`` says why a value is NaN; ``status`` is ``ok``, ``failed: <reason>`` or ``skipped: <why>``.
"""

import functools
import time
import warnings
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from unittest import mock

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scib
import scib_metrics
from scib.metrics.isolated_labels import get_isolated_labels
from scib_metrics.nearest_neighbors import NeighborsResults
from sklearn.neighbors import NearestNeighbors
from threadpoolctl import threadpool_limits

from workflow_scripts.contract import log_expression
from workflow_scripts.names import COLUMNS, CORRECTED, DATASET_UNS, EMBEDDING, OK, SUBSAMPLED
from workflow_scripts.registry import CONTROLS
from workflow_scripts.score.table import run_score_rule

N_NEIGHBORS = 15  # scib's graph metrics build a 15-NN graph (scib.metrics.lisi.recompute_knn)
KBET_NEIGHBORS = 50  # scib's kBET builds a 50-NN graph (scib.metrics.kBET), as does scib-metrics' Benchmarker
LISI_NEIGHBORS = 90  # scib-metrics' Benchmarker: LISI on 90 neighbours, perplexity 30
N_PCS = 50  # PCs of corrected expression and of the PCR baseline (scib's pcr_comparison default)
BATCH_WEIGHT, BIO_WEIGHT = 0.4, 0.6  # scIB's overall score
CLUSTER_KEY = "nmi_leiden"
ROUNDING = 1e-9  # floating-point slack of a score in [0, 1]
QUADRATIC = ("asw_batch", "asw_label", "isolated_label_asw")  # silhouettes: all pairs of cells
SUBSAMPLE_CELLS = 20_000  # above this many cells the quadratic metrics run on a subsample of this many
MIN_GROUP_CELLS = 20  # cells kept of each (batch, cell type) group (all of a smaller one)


class NotApplicable(Exception):
    """A metric the library cannot compute on these data; the message is the table's note."""


def _require_two_labels(rep: "Representation") -> None:
    """Label-conservation metrics compare cell types: with one there is nothing to compare
    (scib's NMI raises a TypeError, the label silhouette a ValueError, cLISI divides by 0)."""
    n = rep.adata.obs[rep.label_key].nunique()
    if n < 2:
        raise NotApplicable(f"not applicable: needs at least 2 cell types; obs['{rep.label_key}'] has {n}")


@dataclass(frozen=True)
class Representation:
    """One representation of one method's output, with what every metric needs computed once.

    Attributes
    ----------
    adata
        Cells with the batch and label columns, the coordinates in ``obsm["X_emb"]``, the 15-NN
        graph in ``obsp``/``uns["neighbors"]`` and the NMI-optimal Leiden clusters in ``obs``.
    neighbors
        The 90 nearest neighbours of each cell (self included): scib-metrics' kBET uses 50, LISI 90.
    baseline
        The dataset's log1p(CP10k), all genes, with its PCA (baseline of PCR and HVG overlap).
    expression
        The corrected expression this representation came from, or None for an embedding.
    batch_key, label_key
        The dataset's obs columns.
    threads
        For the metrics that parallelise (neighbour search, PCR).
    """

    adata: ad.AnnData
    neighbors: NeighborsResults
    batch_key: str
    label_key: str
    baseline: ad.AnnData
    expression: ad.AnnData | None
    threads: int


def asw_batch(rep: Representation) -> float:
    return scib.metrics.silhouette_batch(rep.adata, rep.batch_key, rep.label_key, EMBEDDING, verbose=False)


def ilisi_knn(rep: Representation) -> float:
    """scib-metrics' iLISI on the 90 nearest neighbours (perplexity 30), as its Benchmarker."""
    return scib_metrics.ilisi_knn(_nearest(rep, LISI_NEIGHBORS), rep.adata.obs[rep.batch_key].to_numpy())


def _nearest(rep: Representation, k: int) -> NeighborsResults:
    """The k nearest neighbours of each cell (fewer on a dataset with fewer cells)."""
    return rep.neighbors.subset_neighbors(min(k, rep.neighbors.n_neighbors))


@contextmanager
def _leiden_future_defaults():
    """scib's Leiden clusterings (NMI/ARI's optimal resolution, isolated-label F1) with scanpy's
    announced defaults: the igraph implementation, 2 iterations, undirected. leidenalg iterated
    to convergence cost ~20 s of each dataset's scoring on the default benchmark."""
    leiden = sc.tl.leiden

    @functools.wraps(leiden)  # scib names the clustering by the function's __name__
    def igraph_leiden(*args, **kwargs):
        return leiden(*args, **{"flavor": "igraph", "n_iterations": 2, "directed": False, **kwargs})

    with mock.patch.object(sc.tl, "leiden", igraph_leiden):
        yield


def _exact_neighbors(X: np.ndarray, n_neighbors: int, random_state: int = 0, n_jobs: int = 1) -> NeighborsResults:
    """Exact k-NN (self included) with the signature of ``scib_metrics.nearest_neighbors.pynndescent``."""
    search = NearestNeighbors(n_neighbors=min(n_neighbors, X.shape[0]), n_jobs=n_jobs).fit(X)
    distances, indices = search.kneighbors(X)
    return NeighborsResults(indices=indices, distances=distances)


def kbet(rep: Representation) -> float:
    """scib-metrics' per-label kBET, with its per-label diffusion-map neighbour search made exact.

    ``kbet_per_label`` finds neighbours in each label's diffusion embedding with pynndescent,
    whose numba compilation costs ~25 s in every new process (each scoring job) on this
    project's 2-core machines; exact search returns the neighbours pynndescent approximates
    (identical kBET on the default benchmark) in well under a second.
    """
    batches = rep.adata.obs[rep.batch_key].to_numpy()
    with mock.patch.object(scib_metrics.nearest_neighbors, "pynndescent", _exact_neighbors):
        return scib_metrics.kbet_per_label(_nearest(rep, KBET_NEIGHBORS), batches, rep.adata.obs[rep.label_key].to_numpy())


def graph_connectivity(rep: Representation) -> float:
    return scib.metrics.graph_connectivity(rep.adata, rep.label_key)


def pcr_comparison(rep: Representation) -> float:
    return scib.metrics.pcr_comparison(
        rep.baseline, rep.adata, rep.batch_key, embed=EMBEDDING, n_comps=N_PCS, n_threads=rep.threads
    )


def nmi(rep: Representation) -> float:
    _require_two_labels(rep)
    return scib.metrics.nmi(rep.adata, CLUSTER_KEY, rep.label_key)


def ari(rep: Representation) -> float:
    """Adjusted Rand index, floored at 0: a clustering worse than chance scores as chance does
    (the same floor scib puts on PCR comparison), which keeps every metric in [0, 1]."""
    _require_two_labels(rep)
    return max(0.0, scib.metrics.ari(rep.adata, CLUSTER_KEY, rep.label_key))


def asw_label(rep: Representation) -> float:
    _require_two_labels(rep)
    return scib.metrics.silhouette(rep.adata, rep.label_key, EMBEDDING)


def _require_isolated_labels(rep: Representation) -> None:
    """scib's isolated labels are those in the fewest batches; none when every label is in all."""
    _require_two_labels(rep)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # scib's warning says what the note says
        isolated = get_isolated_labels(rep.adata, rep.label_key, rep.batch_key, None, verbose=False)
    if not isolated:
        n = rep.adata.obs[rep.batch_key].nunique()
        raise NotApplicable(f"no isolated label: every label is in all {n} batches")


def isolated_label_f1(rep: Representation) -> float:
    _require_isolated_labels(rep)
    return scib.metrics.isolated_labels_f1(rep.adata, rep.label_key, rep.batch_key, EMBEDDING, verbose=False)


def isolated_label_asw(rep: Representation) -> float:
    _require_isolated_labels(rep)
    return scib.metrics.isolated_labels_asw(rep.adata, rep.label_key, rep.batch_key, EMBEDDING, verbose=False)


def clisi_knn(rep: Representation) -> float:
    """scib-metrics' cLISI on the 90 nearest neighbours (perplexity 30), as its Benchmarker."""
    _require_two_labels(rep)
    return scib_metrics.clisi_knn(_nearest(rep, LISI_NEIGHBORS), rep.adata.obs[rep.label_key].to_numpy())


def hvg_overlap(rep: Representation) -> float:
    if rep.expression is None:
        raise NotApplicable("needs corrected expression")
    return scib.metrics.hvg_overlap(rep.baseline, rep.expression, rep.batch_key)


METRICS: dict[str, Callable[[Representation], float]] = {
    f.__name__: f
    for f in (
        asw_batch,
        ilisi_knn,
        kbet,
        graph_connectivity,
        pcr_comparison,
        nmi,
        ari,
        asw_label,
        isolated_label_f1,
        isolated_label_asw,
        clisi_knn,
        hvg_overlap,
    )
}


@dataclass(frozen=True)
class MetricSet:
    """Names of the metrics (keys of :data:`METRICS`) scored per category."""

    batch: tuple[str, ...]
    bio: tuple[str, ...]


EMBEDDING_METRICS = MetricSet(
    batch=("asw_batch", "ilisi_knn", "kbet", "graph_connectivity", "pcr_comparison"),
    bio=("nmi", "ari", "asw_label", "isolated_label_f1", "isolated_label_asw", "clisi_knn"),
)
EXPRESSION_METRICS = MetricSet(batch=EMBEDDING_METRICS.batch, bio=EMBEDDING_METRICS.bio + ("hvg_overlap",))
REPRESENTATIONS = {"embedding": EMBEDDING_METRICS, "corrected_pca": EXPRESSION_METRICS}


def representation(coords, obs, batch_key, label_key, baseline, expression=None, threads=1) -> Representation:
    """Attach ``coords`` to the cells; search their neighbours once, build the 15-NN graph
    (scanpy's layout, UMAP connectivities as ``sc.pp.neighbors`` makes them) and the
    NMI-optimal Leiden clusters."""
    adata = ad.AnnData(obs=obs[[batch_key, label_key]].copy())
    adata.obsm[EMBEDDING] = np.asarray(coords, dtype=np.float32)
    neighbors = _exact_neighbors(adata.obsm[EMBEDDING], max(KBET_NEIGHBORS, LISI_NEIGHBORS), n_jobs=threads)
    graph = neighbors.subset_neighbors(min(N_NEIGHBORS, neighbors.n_neighbors))
    adata.obsp["distances"] = graph.knn_graph_distances
    adata.obsp["connectivities"] = graph.knn_graph_connectivities.tocsr()
    adata.uns["neighbors"] = {
        "connectivities_key": "connectivities",
        "distances_key": "distances",
        "params": {"n_neighbors": graph.n_neighbors, "method": "umap", "metric": "euclidean", "use_rep": EMBEDDING},
    }
    if adata.obs[label_key].nunique() > 1:  # with one cell type NMI/ARI are not applicable: no clustering
        scib.metrics.cluster_optimal_resolution(adata, label_key, cluster_key=CLUSTER_KEY, use_rep=EMBEDDING, verbose=False)
    return Representation(adata, neighbors, batch_key, label_key, baseline, expression, threads)


def _baseline(data: ad.AnnData, batch_key: str) -> ad.AnnData:
    """The dataset's log1p(CP10k) with its PCA, computed once per scoring (X as given when the
    dataset declares ``counts: false``: it is log1p(CP10k) already)."""
    baseline = ad.AnnData(X=log_expression(data, dense=False), obs=data.obs[[batch_key]].copy(), var=data.var[[]].copy())
    sc.pp.pca(baseline, n_comps=min(N_PCS, min(baseline.shape) - 1), svd_solver="arpack")
    return baseline


def subsample_cells(obs: pd.DataFrame, batch_key: str, label_key: str, n_cells: int, seed: int) -> np.ndarray:
    """Sorted positions of about ``n_cells`` cells drawn without replacement (``seed``),
    stratified by (batch, cell type): each group keeps its share of ``n_cells`` but at least
    ``MIN_GROUP_CELLS`` (or all its cells), so no group present in the data is lost."""
    groups = obs[batch_key].astype(str) + "\x00" + obs[label_key].astype(str)
    codes = np.unique(groups.to_numpy(), return_inverse=True)[1]
    sizes = np.bincount(codes)
    keep = np.minimum(sizes, np.maximum(np.round(sizes * n_cells / len(codes)).astype(int), MIN_GROUP_CELLS))
    rng = np.random.default_rng(seed)
    order = np.argsort(codes, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    chosen = [rng.choice(order[s : s + n], k, replace=False) for s, n, k in zip(starts, sizes, keep, strict=True)]
    return np.sort(np.concatenate(chosen))


@dataclass(frozen=True)
class Subsample:
    """The cells the quadratic metrics see, and the note their rows carry."""

    rep: Representation
    note: str


def subsample(rep: Representation, n_cells: int = SUBSAMPLE_CELLS, seed: int = 0) -> Subsample | None:
    """``rep`` restricted to a stratified subsample (:func:`subsample_cells`) when it has
    more than ``n_cells`` cells, else None (the metrics use every cell)."""
    total = rep.adata.n_obs
    if total <= n_cells:
        return None
    cells = subsample_cells(rep.adata.obs, rep.batch_key, rep.label_key, n_cells, seed)
    adata = ad.AnnData(obs=rep.adata.obs.iloc[cells].copy())
    adata.obsm[EMBEDDING] = rep.adata.obsm[EMBEDDING][cells]
    note = f"{SUBSAMPLED}: {len(cells):,} of {total:,} cells (quadratic in cells; stratified by batch and cell type, seed {seed})"
    return Subsample(replace(rep, adata=adata), note)


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def _evaluate(name: str, rep: Representation) -> tuple[float, str]:
    """A metric's value and note: NaN with the reason where it is not applicable."""
    try:
        value = float(METRICS[name](rep))
    except NotApplicable as reason:
        return np.nan, str(reason)
    if np.isnan(value):
        return value, "the library returned NaN on these data"
    if not -ROUNDING <= value <= 1 + ROUNDING:
        raise ValueError(f"metric {name} = {value}, outside [0, 1]")
    value = min(max(value, 0.0), 1.0)  # NMI of identical partitions can come out as 1 + 2e-16
    return value, ""


def _coordinates(data: ad.AnnData, integrated: ad.AnnData, batch_key: str) -> dict:
    """{representation: (coordinates, corrected expression or None)} of one method's output."""
    inputs = {"embedding": (integrated.obsm[EMBEDDING], None)}
    if CORRECTED in integrated.layers:
        values = np.asarray(integrated.layers[CORRECTED])
        modelled = np.isfinite(values).all(axis=0)  # NaN columns: genes the method did not model
        expression = ad.AnnData(X=values[:, modelled], obs=data.obs[[batch_key]].copy(), var=data.var[[]].iloc[modelled])
        coords = sc.pp.pca(expression.X, n_comps=min(N_PCS, min(expression.shape) - 1), svd_solver="arpack")
        inputs["corrected_pca"] = (coords, expression)
    return inputs


def score_method(
    data: ad.AnnData,
    integrated: ad.AnnData,
    dataset: str,
    method: str,
    threads: int = 1,
    seed: int = 0,
    subsample_cells: int = SUBSAMPLE_CELLS,
) -> pd.DataFrame:
    """All scIB metrics of one method's output on one dataset, one row per (representation, metric).

    ``data`` is the dataset (contract layout, raw counts); ``integrated`` the method's output file.
    ``threads`` bounds BLAS and the metrics that parallelise; at the default benchmark's size one
    thread is fastest (2,000 cells: thread and process start-up outweigh the work), so two
    scoring jobs in parallel use two cores better than one job with two threads. The
    :data:`QUADRATIC` metrics run on a subsample (``seed``) above ``subsample_cells`` cells,
    noted in their rows.
    """
    if not integrated.obs_names.equals(data.obs_names):
        raise ValueError(f"{method} on '{dataset}': integrated cells differ from the dataset's (order or names)")
    keys = data.uns[DATASET_UNS]
    batch_key, label_key = keys["batch_key"], keys["label_key"]
    rows = []
    with threadpool_limits(threads), _leiden_future_defaults():
        baseline = _baseline(data, batch_key)
        for name, (coords, expression) in _coordinates(data, integrated, batch_key).items():
            start = time.perf_counter()
            rep = representation(coords, data.obs, batch_key, label_key, baseline, expression, threads)
            metric_set = REPRESENTATIONS[name]
            small = subsample(rep, subsample_cells, seed)
            for category, metrics in (("batch", metric_set.batch), ("bio", metric_set.bio)):
                for metric in metrics:
                    if small is not None and metric in QUADRATIC:
                        value, note = _evaluate(metric, small.rep)
                        note = _join(note, small.note)
                    else:
                        value, note = _evaluate(metric, rep)
                    rows.append((dataset, method, name, category, metric, "raw", value, note, OK))
            print(f"scored {method} / {name} on '{dataset}' in {time.perf_counter() - start:.1f} s", flush=True)
    return pd.DataFrame(rows, columns=COLUMNS)


def _minmax(values: pd.Series) -> pd.Series:
    """Min-max over the methods of one (dataset, representation, metric); NaN when fewer than
    two methods have a value or all are equal, since then scaling carries no ranking."""
    low, high = values.min(), values.max()
    if values.notna().sum() < 2 or high == low:
        return values * np.nan
    return (values - low) / (high - low)


def add_totals(table: pd.DataFrame) -> pd.DataFrame:
    """Append ``batch_score``, ``bio_score`` and ``overall`` rows per (dataset, method, representation).

    Scores are means of the available metrics of their category, ``overall`` =
    0.4 batch + 0.6 bio (scIB). ``scaling="raw"`` averages the metrics as they are;
    ``scaling="minmax"`` first min-max scales each metric across the methods of a (dataset,
    representation) — NaN where fewer than two methods have it (min-max over one method is
    meaningless) or all score the same (it ranks nothing), so such a metric drops out of the mean.
    Controls get raw totals only: they bracket the methods and are not ranked among them.
    """
    keys = ["dataset", "method", "representation"]
    metrics = table[table["category"].isin(["batch", "bio"])]
    methods = metrics[~metrics["method"].isin(CONTROLS)]  # controls are never ranked: no min-max
    scaled = methods.assign(value=methods.groupby(["dataset", "representation", "metric"])["value"].transform(_minmax))
    totals = []
    for scaling, rows in (("raw", metrics), ("minmax", scaled)):
        scores = rows.groupby(keys + ["category"])["value"].mean().unstack("category")
        scores = scores.reindex(columns=["batch", "bio"])
        overall = BATCH_WEIGHT * scores["batch"] + BIO_WEIGHT * scores["bio"]
        wide = pd.DataFrame({"batch_score": scores["batch"], "bio_score": scores["bio"], "overall": overall})
        long = wide.reset_index().melt(id_vars=keys, var_name="metric", value_name="value")
        totals.append(long.assign(category="total", scaling=scaling))
    totals = pd.concat(totals, ignore_index=True)
    status = metrics.groupby(keys)["status"].first().rename("status").reset_index()
    totals = totals.merge(status, on=keys, how="left").assign(note="")
    return pd.concat([table, totals[COLUMNS]], ignore_index=True)


def missing_rows(dataset: str, statuses: Mapping[str, str]) -> pd.DataFrame:
    """Explicit NaN rows (embedding metrics) for methods that did not run, each with its status
    ("failed: <reason>" or "skipped: <why>"), so they stay in the table."""
    rows = [
        (dataset, method, "embedding", category, metric, "raw", np.nan, "", status)
        for method, status in statuses.items()
        for category, metrics in (("batch", EMBEDDING_METRICS.batch), ("bio", EMBEDDING_METRICS.bio))
        for metric in metrics
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


if __name__ == "__main__":
    smk = snakemake  # noqa: F821 (injected by Snakemake)
    run_score_rule(smk, score_method, missing_rows, finish=add_totals, threads=smk.threads, seed=smk.config.get("seed", 0))

"""Which GENEX explanation recovers the simulated truth: AUPRC and AUROC of each variant per
covariate, next to a random ranking and a simple baseline, and the wall time of explain.

GENEX is trained as ``workflow_scripts.integrate.methods.run_genex`` trains it (label-conditioned, the
dataset's covariates registered, the training arguments of ``methods: genex`` in
config/config.yaml) on :data:`SIMULATION`, which has every kind of truth at once (or on a
simulated dataset of the config, ``--dataset``). The truth, from the simulator's
``var`` columns (the levels of a covariate are compared with each other, so both levels of a
two-level covariate share one truth):

* cell type g: genes whose ``de_factor_<g>`` differs from another type's;
* extra covariate level L: genes whose ``<cov>_factor_<L>`` differs from another level's,
  overall (global covariate) or within a cell type (``<cov>_factor_<L>__<g>``, per-cell-type
  covariate; overall: in any cell type);
* batch b: every gene has a batch factor, so the truth is the strongest tenth of genes by
  ``|log f_b - mean of the other batches' log f|`` (within a cell type from the interaction
  columns ``batch_factor_<b>__<g>``; overall: averaged over cell types).

Baselines: a random ranking; ``mean-diff``: |difference of mean log1p CP10k between the
level's cells and the rest| (within the cell type for per-cell-type rows); ``stratified_lfc``,
the workflow's strongest statistical rival (:mod:`workflow_scripts.analyse.explain`). The
significance table gives how many genes explain calls significant, and the share of them
that are false (FDP) and the share of the truth they find (recall).

Usage::

    .venv/bin/python benchmarks/explain_variants.py [--threads 2] [--cells N] [--dataset NAME] [--model DIR] [--no-network]

About 80 s on one thread of a lightly loaded machine (training 39 s, explain 0.6-11 s per
method). On a busy machine ``--threads 1`` is many times faster than 2 (16 min there with 2):
threads that wait for each other stall.
"""

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from sklearn.metrics import average_precision_score, roc_auc_score

from genex_core import GENEX
from genex_core.explain import ALL, DEFAULT_METHOD, METHODS
from genex_core.preprocessing import log_normalize
from workflow_scripts.analyse.explain import run_rival
from workflow_scripts.data.datasets import load_dataset

CONFIG = Path(__file__).resolve().parents[1] / "config" / "config.yaml"
STRONG_SHARE = 0.1  # batch truth: this share of genes with the largest batch contrast
ALPHA = 0.05  # explain's default FDR level
# 2,000 cells x 1,000 genes with every extension of the simulator at moderate strength:
# composition that differs between batches, a batch effect that differs by cell type for 20%
# of the genes, a per-cell-type covariate (condition) and a global one (sex).
SIMULATION = dict(
    nGenes=1000,
    batchCells=[800, 700, 500],
    group_prob=[[0.40, 0.30, 0.20, 0.10], [0.25, 0.25, 0.25, 0.25], [0.10, 0.20, 0.30, 0.40]],
    de_prob=0.1,
    de_facLoc=0.3,
    de_facScale=0.3,
    batch_facLoc=0.1,
    batch_facScale=0.1,
    batch_interaction_prob=0.2,
    seed=1,
    covariates=[
        dict(name="condition", levels=["control", "case"], gene_prob=0.05, facLoc=0.6, facScale=0.2, per_cell_type=True),
        dict(name="sex", levels=["female", "male"], gene_prob=0.02, facLoc=0.8, facScale=0.2),
    ],
)


def _log_factors(var: pd.DataFrame, names: list[str]) -> np.ndarray:
    return np.log(var[names].to_numpy(dtype=float).T)  # (levels, genes)


def differs(log_f: np.ndarray, level: int) -> np.ndarray:
    """Genes whose factor at ``level`` differs from another level's."""
    return (np.abs(log_f[level] - np.delete(log_f, level, axis=0)) > 1e-9).any(0)


def contrast(log_f: np.ndarray, level: int) -> np.ndarray:
    """|log factor at ``level`` - mean log factor of the other levels|."""
    return np.abs(log_f[level] - np.delete(log_f, level, axis=0).mean(0))


def truth(adata, info: dict, key: str, level: str, cell_type: str) -> np.ndarray:
    """Boolean truth of one (covariate, level, cell type) as described in the module docstring."""
    var, types = adata.var, list(adata.obs[info["label_key"]].cat.categories)
    levels = list(adata.obs[key].cat.categories)
    i = levels.index(level)
    if key == info["label_key"]:
        return differs(_log_factors(var, [f"de_factor_{g}" for g in levels]), i)
    if key == info["batch_key"]:

        def per_type(g):
            cols = [f"batch_factor_{b}__{g}" if f"batch_factor_{b}__{g}" in var else f"batch_factor_{b}" for b in levels]
            return contrast(_log_factors(var, cols), i)

        strength = per_type(cell_type) if cell_type != ALL else np.mean([per_type(g) for g in types], axis=0)
        return strength >= np.quantile(strength, 1 - STRONG_SHARE)
    if f"{key}_factor_{level}" in var:  # global covariate: the same truth in every cell type
        return differs(_log_factors(var, [f"{key}_factor_{lv}" for lv in levels]), i)
    within = [differs(_log_factors(var, [f"{key}_factor_{lv}__{g}" for lv in levels]), i) for g in types]
    return np.any(within, axis=0) if cell_type == ALL else within[types.index(cell_type)]


def mean_diff(adata, info: dict, x: np.ndarray) -> pd.DataFrame:
    """The baseline in the explanation table's layout: |mean of the level - mean of the rest|."""
    label = adata.obs[info["label_key"]].to_numpy()
    rows = []
    for key in [info["batch_key"], info["label_key"], *info["covariates"]]:
        values = adata.obs[key].to_numpy()
        subsets = [(ALL, np.ones(adata.n_obs, bool))]
        if key != info["label_key"]:
            subsets += [(g, label == g) for g in adata.obs[info["label_key"]].cat.categories]
        for level in adata.obs[key].cat.categories:
            for cell_type, cells in subsets:
                inside, rest = cells & (values == level), cells & (values != level)
                if inside.sum() and rest.sum():
                    score = np.abs(x[inside].mean(0) - x[rest].mean(0))
                    rows.append(pd.DataFrame({"covariate": key, "level": level, "cell_type": cell_type,
                                              "gene": adata.var_names, "score": score}))  # fmt: skip
    return pd.concat(rows, ignore_index=True)


def evaluate(adata, info: dict, table: pd.DataFrame, variant: str) -> list[dict]:
    """AUPRC and AUROC of ``table``'s scores for every (covariate, level, cell type) whose
    truth has both positives and negatives."""
    out = []
    for (key, level, cell_type), rows in table.groupby(["covariate", "level", "cell_type"], sort=False):
        positive = truth(adata, info, key, level, cell_type)
        if 0 < positive.sum() < positive.size:
            score = rows.set_index("gene")["score"].reindex(adata.var_names).to_numpy()
            out.append(dict(variant=variant, covariate=key, scope="overall" if cell_type == ALL else "per type",
                            auprc=average_precision_score(positive, score), auroc=roc_auc_score(positive, score),
                            share=positive.mean()))  # fmt: skip
    return out


def significance(adata, info: dict, table: pd.DataFrame) -> pd.DataFrame:
    """Genes called significant, and their false discovery proportion and recall against the
    truth (for the batch every gene is affected, so only the count is meaningful)."""
    out = []
    for (key, level, cell_type), rows in table.groupby(["covariate", "level", "cell_type"], sort=False):
        positive = truth(adata, info, key, level, cell_type)
        called = rows.set_index("gene")["significant"].reindex(adata.var_names).to_numpy()
        hits = (called & positive).sum()
        out.append(dict(covariate=key, scope="overall" if cell_type == ALL else "per type", significant=called.sum(),
                        fdp=1 - hits / max(called.sum(), 1) if called.any() else 0.0, recall=hits / positive.sum()))  # fmt: skip
    return pd.DataFrame(out).groupby(["covariate", "scope"], sort=False).mean()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cells", type=int, default=None, help="explain N random cells (default: all; training uses all)")
    parser.add_argument("--dataset", default=None, help="a simulated dataset of config/config.yaml instead of SIMULATION")
    parser.add_argument("--model", type=Path, default=None, help="load the trained model from DIR, or train and save it there")
    parser.add_argument("--no-network", action="store_true", help="train the offsets only (ablation: GENEX.train(network=False))")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    config = yaml.safe_load(CONFIG.read_text())
    spec = config["datasets"][args.dataset] if args.dataset else {"simulate": SIMULATION}
    adata = load_dataset(args.dataset or "explain", spec)
    info = adata.uns["dataset"]
    keys = [info["batch_key"], info["label_key"], *info["covariates"]]
    print(f"data: {adata.n_obs} cells x {adata.n_vars} genes; covariates {keys}")
    if args.model and (args.model / "model.pt").exists():
        model = GENEX.load(args.model, adata, device=args.device)
    else:
        train_args = {k: v for k, v in config["methods"]["genex"].items() if k not in ("mode", "device")}
        train_args |= {"network": False} if args.no_network else {}
        model = GENEX(adata, batch_key=info["batch_key"], label_key=info["label_key"], covariate_keys=info["covariates"])
        start = time.perf_counter()
        model.train(seed=config["seed"], device=args.device, progress=False, **train_args)
        print(f"GENEX trained in {time.perf_counter() - start:.0f} s ({train_args})")
        if args.model:
            model.save(args.model)

    explained = adata
    if args.cells and args.cells < adata.n_obs:
        explained = adata[np.sort(np.random.default_rng(0).choice(adata.n_obs, args.cells, replace=False))].copy()
    print(f"explaining {explained.n_obs} cells with each method ({args.threads} torch threads)")
    results, seconds, tables = [], {}, {}
    for method in METHODS:
        start = time.perf_counter()
        tables[method] = model.explain(method=method, adata=explained)
        seconds[method] = time.perf_counter() - start
        results += evaluate(adata, info, tables[method], method)
    default = tables[DEFAULT_METHOD]
    start = time.perf_counter()
    results += evaluate(adata, info, run_rival("stratified_lfc", explained), "stratified_lfc")
    seconds["stratified_lfc"] = time.perf_counter() - start
    baseline = mean_diff(explained, info, log_normalize(explained.X).toarray())
    results += evaluate(adata, info, baseline, "mean-diff")
    rng = np.random.default_rng(0)
    results += evaluate(adata, info, baseline.assign(score=rng.random(len(baseline))), "random")

    summary = pd.DataFrame(results).groupby(["covariate", "scope", "variant"], sort=False)[["auprc", "auroc", "share"]].mean()
    wide = summary.unstack("variant")
    pd.set_option("display.width", 250)
    for metric in ("auprc", "auroc"):
        print(f"\n{metric.upper()}, mean over levels (and cell types); truth share = a random ranking's expected AUPRC")
        print(wide[metric].assign(truth_share=wide["share"].iloc[:, 0]).round(3).to_string())
        print("mean over rows: " + ", ".join(f"{v} {x:.3f}" for v, x in wide[metric].mean().items()))
    print(f"\nsignificant at FDR {ALPHA} (the same for every method), mean over levels; FDP and recall against the truth:")
    print(significance(adata, info, default).round(2).to_string())
    print("\nexplain wall time (s): " + ", ".join(f"{m} {s:.1f}" for m, s in seconds.items()))


if __name__ == "__main__":
    main()

"""The simulated truth of each explained comparison (the rules are in
:mod:`workflow_scripts.score.explain`'s docstring), for the explanation scores and figures."""

import anndata as ad
import numpy as np

from workflow_scripts.analyse.de import Comparison
from workflow_scripts.names import ALL_CELLS, DATASET_UNS, REST
from workflow_scripts.score.de import true_genes as de_true_genes

BATCH_MIN_LOG_EFFECT = float(np.log(1.25))


class Truth:
    """The true genes of each explained comparison of one dataset (see the module docstring)."""

    def __init__(self, data: ad.AnnData):
        info = data.uns[DATASET_UNS]
        self.var = data.var
        self.batch_key, self.label_key = info["batch_key"], info["label_key"]
        self.covariates = list(info.get("covariates", []))
        keys = [self.batch_key, self.label_key, *self.covariates]
        self.levels = {k: [str(c) for c in data.obs[k].cat.categories] for k in keys}

    def category(self, covariate: str) -> str:
        return {self.batch_key: "batch", self.label_key: "cell_type"}.get(covariate, covariate)

    def scored(self, covariate: str, level: str, cell_type: str) -> bool:
        """Whether a (covariate, level, cell_type) row group is one of the scored comparisons."""
        if covariate == self.label_key:
            return cell_type == ALL_CELLS
        return covariate == self.batch_key or (covariate in self.covariates and level != self.levels[covariate][0])

    def genes(self, covariate: str, level: str, cell_type: str) -> np.ndarray | None:
        """Boolean per gene of ``var``, or None where the data hold no factors for it."""
        if covariate == self.batch_key:
            effect = self._batch_log_effect(level, cell_type)
            return None if effect is None else np.abs(effect) >= BATCH_MIN_LOG_EFFECT
        if covariate == self.label_key:
            return de_true_genes(self.var, Comparison(covariate, level, REST), self.label_key)
        reference = self.levels[covariate][0]
        truth = de_true_genes(self.var, Comparison(covariate, level, reference, cell_type), self.label_key)
        if truth is None and cell_type == ALL_CELLS:  # an effect simulated per cell type: in any
            types = self.levels[self.label_key]
            per_type = [de_true_genes(self.var, Comparison(covariate, level, reference, t), self.label_key) for t in types]
            truth = None if any(t is None for t in per_type) else np.any(per_type, axis=0)
        return truth

    def _batch_log_effect(self, batch: str, cell_type: str) -> np.ndarray | None:
        types = self.levels[self.label_key] if cell_type == ALL_CELLS else [cell_type]

        def log_factor(b: str) -> np.ndarray | None:
            specific = [f"batch_factor_{b}__{t}" for t in types]
            if all(c in self.var.columns for c in specific):
                return np.log(self.var[specific].to_numpy()).mean(axis=1)
            column = f"batch_factor_{b}"
            return np.log(self.var[column].to_numpy()) if column in self.var.columns else None

        factors = [log_factor(b) for b in self.levels[self.batch_key]]
        if any(f is None for f in factors):
            return None
        index = self.levels[self.batch_key].index(batch)
        others = [f for i, f in enumerate(factors) if i != index]
        return factors[index] - np.mean(others, axis=0)

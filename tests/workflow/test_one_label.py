"""Issue 14, item 2: a dataset with one cell type is scored; label metrics are not applicable."""

import anndata as ad
import numpy as np
import scanpy as sc

from genex_core.preprocessing import log_normalize
from workflow_scripts.contract import to_contract
from workflow_scripts.score.scib import REPRESENTATIONS, score_method

TWO_LABELS = {"nmi", "ari", "asw_label", "isolated_label_f1", "isolated_label_asw", "clisi_knn"}


def test_one_cell_type_scores_what_it_can_and_says_why_not_the_rest(tiny_adata):
    one = tiny_adata.copy()
    one.obs["cell_type"] = "T"
    data = to_contract(one, "one_label")
    corrected = np.asarray(log_normalize(data.X).toarray())
    integrated = ad.AnnData(obs=data.obs.copy(), var=data.var[[]].copy())
    integrated.layers["corrected"] = corrected
    integrated.obsm["X_emb"] = sc.pp.pca(corrected, n_comps=10)

    table = score_method(data, integrated, "one_label", "fake")  # crashed in scib's NMI before

    assert set(table["representation"]) == set(REPRESENTATIONS)
    assert (table["status"] == "ok").all()
    label_rows = table[table["metric"].isin(TWO_LABELS)]
    assert len(label_rows) == 2 * len(TWO_LABELS) and label_rows["value"].isna().all()
    assert (label_rows["note"] == "not applicable: needs at least 2 cell types; obs['cell_type'] has 1").all()
    rest = table[~table["metric"].isin(TWO_LABELS)]
    assert rest["value"].notna().all() and rest["value"].between(0, 1).all()

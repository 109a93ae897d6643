"""Precision–recall curves of the DE figure, computed in the score stage
(workflow_scripts/score/de_curves.py): sklearn's curve and average precision, the same quantity
de.csv's ``auprc`` averages, for the comparisons the figure shows."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, precision_recall_curve

from workflow_scripts.score.de import _comparison_metrics
from workflow_scripts.score.de_curves import CURVE_COLUMNS, KEYS, de_curves, shown_comparisons, write_curves

N_GENES = 40
COMPARISONS = [
    ("cell_type", "A", "rest", "all"),
    ("cell_type", "B", "rest", "all"),
    ("condition", "case", "control", "A"),
    ("condition", "case", "control", "B"),
    ("dose", "high", "low", "A"),
]


def gene_table(rng, method: str, workflow: str, no_true: tuple = ()) -> pd.DataFrame:
    parts = []
    for key in COMPARISONS:
        truth = np.zeros(N_GENES) if key in no_true else (rng.random(N_GENES) < 0.3).astype(float)
        score = truth * 2 + rng.normal(size=N_GENES)
        parts.append(
            pd.DataFrame(
                {
                    "dataset": "d",
                    "method": method,
                    "workflow": workflow,
                    **dict(zip(KEYS, key, strict=True)),
                    "gene": [f"g{g}" for g in range(N_GENES)],
                    "score": score,
                    "significant": score > 1,
                    "significant_paper": np.nan,
                    "is_true": truth,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


@pytest.fixture
def tables(tmp_path):
    rng = np.random.default_rng(3)
    wilcoxon = pd.concat([gene_table(rng, "combat", "wilcoxon"), gene_table(rng, "truth", "wilcoxon")], ignore_index=True)
    raw = gene_table(rng, "unintegrated", "ols_batch", no_true=[("dose", "high", "low", "A")])
    paths = [tmp_path / "wilcoxon.csv.gz", tmp_path / "unintegrated.csv.gz"]
    wilcoxon.to_csv(paths[0], index=False)
    raw.to_csv(paths[1], index=False)
    return paths, pd.concat([wilcoxon, raw], ignore_index=True)


def test_the_shown_comparisons_are_the_first_cell_type_and_each_covariate_within_it():
    table = gene_table(np.random.default_rng(0), "m", "wilcoxon")
    assert shown_comparisons(table) == [COMPARISONS[0], COMPARISONS[2], COMPARISONS[4]]
    no_rest = table[table["reference"] != "rest"]  # without a cell type vs rest: the first of each covariate
    assert shown_comparisons(no_rest) == [COMPARISONS[2], COMPARISONS[4]]


def test_curves_are_sklearns_and_their_ap_is_the_de_tables_auprc(tables, tmp_path):
    paths, genes = tables
    curves = de_curves(paths)
    assert list(curves.columns) == CURVE_COLUMNS
    shown = [COMPARISONS[0], COMPARISONS[2], COMPARISONS[4]]
    assert set(curves[["method", "workflow"]].itertuples(index=False, name=None)) == {
        ("combat", "wilcoxon"),
        ("truth", "wilcoxon"),
        ("unintegrated", "ols_batch"),
    }
    assert list(dict.fromkeys(curves[KEYS].itertuples(index=False, name=None))) == shown
    for (method, _, *key), points in curves.groupby(["method", "workflow", *KEYS], sort=False):
        rows = genes[(genes["method"] == method) & (genes[KEYS] == pd.Series(key, index=KEYS)).all(axis=1)]
        truth = rows["is_true"].to_numpy(bool)
        if not truth.any():  # no true genes: one NaN row, the curve is undefined
            assert len(points) == 1 and points[["average_precision", "recall", "precision"]].isna().all(axis=None)
            continue
        precision, recall, _ = precision_recall_curve(truth, rows["score"])
        np.testing.assert_allclose(points["precision"], precision)
        np.testing.assert_allclose(points["recall"], recall)
        ap = average_precision_score(truth, rows["score"])
        assert points["average_precision"].unique() == pytest.approx([ap])
        assert _comparison_metrics(rows)["auprc"] == pytest.approx(ap)  # what de.csv averages per category
    write_curves(curves, tmp_path / "scores" / "de_curves.csv.gz")
    back = pd.read_csv(tmp_path / "scores" / "de_curves.csv.gz", dtype={k: str for k in KEYS})
    assert list(back.columns) == CURVE_COLUMNS and len(back) == len(curves)
    np.testing.assert_allclose(back["average_precision"], curves["average_precision"], rtol=1e-5)
    assert not list((tmp_path / "scores").glob(".*.tmp"))  # written atomically: no temporary file left


def test_no_gene_tables_give_an_empty_table_with_the_columns(tmp_path):
    empty = tmp_path / "empty.csv.gz"
    pd.DataFrame(columns=["dataset", "method", "workflow", *KEYS, "gene", "score", "is_true"]).to_csv(empty, index=False)
    assert de_curves([empty]).empty and list(de_curves([empty]).columns) == CURVE_COLUMNS

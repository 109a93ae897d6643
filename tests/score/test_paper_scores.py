"""Our measurements beside a paper's published values, in the score stage
(workflow_scripts/score/paper.py): the paper-protocol group F1, the comparison table the paper
figure draws and the claims, from the synthetic results of tests/report/test_figures.py."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "report"))  # the figures' synthetic results
from test_figures import paper_inputs, results  # noqa: E402, F401 (the synthetic results fixture)

from workflow_scripts.score import paper  # noqa: E402
from workflow_scripts.score.table import read_score_table  # noqa: E402


def test_group_f1_is_sklearns_f1_of_the_paper_protocol_calls(results):  # noqa: F811
    inputs = paper_inputs(results)
    found = paper.group_f1(inputs["genes"], "A").set_index(["dataset", "method"])["value"]
    genes = pd.read_csv(results / "d1" / "de" / "wilcoxon" / "combat.csv.gz")
    rows = genes[(genes["level"] == "A") & (genes["reference"] == "rest")]
    assert found[("d1", "combat")] == pytest.approx(
        f1_score(rows["is_true"].astype(bool), rows["significant_paper"].astype(bool))
    )
    assert ("d2", "genex") not in found.index  # failed there: no per-gene table
    assert paper.group_f1(inputs["genes"], "Group1").empty  # no such group: no rows


def test_comparison_takes_each_measure_by_the_paper_protocol(results):  # noqa: F811
    inputs = paper_inputs(results, group="A")  # the synthetic cell types are A, B, C
    published = paper.read_published(inputs["published"])
    ours, failures, roles, order, basis = paper.measured(inputs["scib"], inputs["truth"], inputs["de"], inputs["genes"], "A")
    assert failures == {("d2", "genex"): "out of memory"} and roles["truth"] == "control"
    assert basis["d1"].startswith("A vs rest")
    table = paper.comparison(published, ours, failures, order).set_index(["dataset", "measure", "method"])
    scib = read_score_table(inputs["scib"])
    expected = scib.query("dataset == 'd1' and method == 'combat' and representation == 'corrected_pca' and metric == 'overall'")
    assert table.loc[("d1", "scib_overall", "combat"), "measured"] == pytest.approx(expected["value"].iloc[0])
    assert table.loc[("d1", "scib_overall", "combat"), "published"] == 0.70
    assert table.loc[("d1", "scib_overall", "harmony"), "representation"] == "embedding"  # no corrected expression
    assert np.isnan(table.loc[("d1", "scib_overall", "seurat"), "measured"])
    assert table.loc[("d1", "scib_overall", "seurat"), "status"] == paper.NOT_RUN
    assert table.loc[("d2", "mse", "genex"), "status"] == "failed: out of memory"
    assert table.loc[("d1", "mse", "harmony"), "status"] == paper.NOT_APPLICABLE
    # F1 of A vs rest from the per-gene table, not the mean of de.csv
    f1 = paper.group_f1(inputs["genes"], "A").set_index(["dataset", "method"])["value"]
    assert table.loc[("d1", "f1_paper", "combat"), "measured"] == pytest.approx(f1[("d1", "combat")])
    assert table.loc[("d1", "f1_paper", "unintegrated"), "published"] == 0.06


def test_paper_tables_write_what_the_figure_reads(results):  # noqa: F811
    table, found = paper.paper_tables(**paper_inputs(results))  # Group1: not in the synthetic data
    assert list(table.columns) == paper.COMPARISON_COLUMNS and list(found.columns) == paper.CLAIMS_COLUMNS
    roles = table.drop_duplicates("method").set_index("method")["role"]
    assert roles["truth"] == "control" and roles["combat"] == "method" and roles["seurat"] == ""  # published only
    notes = table.loc[table["measure"] == "f1_paper", "note"]
    assert notes.str.startswith("mean over cell types vs rest").all()  # says how the DE F1 was taken
    assert (table.loc[table["measure"] != "f1_paper", "note"] == "").all()
    d1 = found[found["dataset"] == "d1"].set_index(["measure", "method"])
    assert d1.loc[("scib_overall", "combat"), "verdict"] in ("reproduces", "does not reproduce")
    assert d1.loc[("scib_overall", "seurat"), "verdict"] == "not testable"
    assert d1.loc[("scib_batch", "genex"), "verdict"] == "value only"
    assert (found.loc[found["dataset"] == "d2", "verdict"] == "not testable").all()  # genex failed there
    # the claims are the comparison's: our ordering of genex and combat against the paper's
    row = table.set_index(["dataset", "measure", "method"])
    ours = row.loc[("d1", "scib_overall", "genex"), "measured"] > row.loc[("d1", "scib_overall", "combat"), "measured"]
    assert d1.loc[("scib_overall", "combat"), "verdict"] == ("reproduces" if ours else "does not reproduce")

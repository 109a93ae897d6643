"""Replicates and sweeps: the config's datasets expanded by `seeds` and `sweep` (names, seeds,
clear errors), the aggregates over seeds (mean, t-interval, rank stability) on hand-made tables
with known answers, the verdict's intervals and paired test, and a real run of a tiny config
with two seeds and two sweep values."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from workflow_scripts.config_keys import ConfigError
from workflow_scripts.replicates import expand_datasets, replicate_rows
from workflow_scripts.report.headline import headline
from workflow_scripts.score.aggregate import aggregate_aspects, aggregate_scores, aspect_ranks
from workflow_scripts.score.intervals import paired_p, rank_stability, t_interval
from workflow_scripts.score.verdict import verdict

REPO = Path(__file__).resolve().parents[2]
SIM = {"simulate": {"nGenes": 10, "batchCells": [5, 5], "seed": 7}}
KEYS = ["batch_facLoc", "group_prob", "seed"]


def test_without_seeds_or_sweep_the_names_and_specs_are_the_configs():
    datasets = {"a": SIM, "b": {"h5ad": "x.h5ad"}}
    replicates = expand_datasets(datasets, default_seed=3)
    assert list(replicates) == ["a", "b"]
    assert replicates["a"].spec == SIM and replicates["a"].seed == 3 and replicates["a"].sweep_parameter is None


def test_seeds_and_sweep_expand_into_named_replicates():
    datasets = {"a": SIM, "b": SIM}
    sweep = {"parameter": "batch_facLoc", "values": [0.1, 0.4]}
    replicates = expand_datasets(datasets, [0, 2], sweep, simulate_keys=KEYS)
    assert list(replicates)[:4] == [
        "a.batch_facLoc=0.1.s0",
        "a.batch_facLoc=0.1.s2",
        "a.batch_facLoc=0.4.s0",
        "a.batch_facLoc=0.4.s2",
    ]
    r = replicates["a.batch_facLoc=0.4.s2"]
    assert (r.base, r.seed, r.sweep_value, r.sweep_label) == ("a", 2, 0.4, "0.4")
    assert r.spec["simulate"]["seed"] == 9 and r.spec["simulate"]["batch_facLoc"] == 0.4  # 7 + seed 2
    assert SIM["simulate"] == {"nGenes": 10, "batchCells": [5, 5], "seed": 7}  # the config is not changed
    assert list(expand_datasets(datasets, [1]))[0] == "a.s1"
    rows = replicate_rows(replicates)
    assert rows[0] == {
        "dataset": "a.batch_facLoc=0.1.s0",
        "base_dataset": "a",
        "sweep_parameter": "batch_facLoc",
        "sweep_value": "0.1",
        "seed": 0,
    }


def test_a_list_valued_sweep_is_named_by_position():
    sweep = {"parameter": "group_prob", "values": [[0.5, 0.5], [0.9, 0.1]]}
    replicates = expand_datasets({"a": SIM}, None, sweep, simulate_keys=KEYS)
    assert list(replicates) == ["a.group_prob=v1", "a.group_prob=v2"]
    assert replicates["a.group_prob=v2"].sweep_label == "[0.9, 0.1]"


@pytest.mark.parametrize(
    ("datasets", "sweep", "message"),
    [
        (
            {"a": SIM},
            {"parameter": "batch_fac", "values": [1]},
            "sweep: 'batch_fac' is not a simulate key of dataset 'a'. Did you mean 'batch_facLoc'?",
        ),
        (
            {"a": SIM, "mine": {"h5ad": "x.h5ad"}},
            {"parameter": "batch_facLoc", "values": [1]},
            "sweep: dataset 'mine' is not simulated (h5ad)",
        ),
        ({"a": SIM}, {"parameter": "seed", "values": [1, 2]}, "list the seeds under `seeds:`"),
        ({"a": SIM}, {"parameter": "batch_facLoc", "values": [1], "datasets": ["b"]}, "sweep: datasets: 'b' is not a dataset"),
        ({"a": SIM}, {"parameter": "batch_facLoc", "values": [1, 1]}, "values of 'batch_facLoc' repeat"),
    ],
)
def test_a_bad_sweep_is_named(datasets, sweep, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        expand_datasets(datasets, None, sweep, simulate_keys=KEYS)


def test_sweep_datasets_leaves_the_others_alone():
    replicates = expand_datasets(
        {"a": SIM, "mine": {"h5ad": "x"}},
        None,
        {"parameter": "batch_facLoc", "values": [1, 2], "datasets": ["a"]},
        simulate_keys=KEYS,
    )
    assert list(replicates) == ["a.batch_facLoc=1", "a.batch_facLoc=2", "mine"]


def test_t_interval_paired_test_and_rank_stability_by_hand():
    mean, sd, low, high = t_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 * 1.0 / np.sqrt(3)  # t(0.975, 2) * sd / sqrt(n)
    assert (mean, sd) == (2.0, 1.0) and low == pytest.approx(2 - half) and high == pytest.approx(2 + half)
    assert np.isnan(t_interval([5.0])[2]) and t_interval([5.0])[0] == 5.0
    assert paired_p([1, 2, 3], [1, 2, 3]) == 1.0 and paired_p([2, 3, 4], [1, 2, 3]) == 0.0
    assert paired_p([0.9, 0.8, 0.95, 0.85], [0.1, 0.2, 0.15, 0.12]) < 0.01
    assert rank_stability([1, 1, 2, 1]) == (1.0, 0.75) and rank_stability([2, 1]) == (1.0, 0.5)


def replicates_table(seeds=(0, 1, 2)) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"dataset": f"d.x={v}.s{s}", "base_dataset": "d", "sweep_parameter": "x", "sweep_value": str(v), "seed": s}
            for v in (1, 2)
            for s in seeds
        ]
    )


def scib_rows(values: dict[str, list[float]], seeds=(0, 1, 2), failed: str | None = None) -> pd.DataFrame:
    """A scib table: each method's overall score per (sweep value 1 and 2) x seed, label-free."""
    rows = []
    for method, scores in values.items():
        for (v, s), score in zip([(v, s) for v in (1, 2) for s in seeds], scores, strict=True):
            status = f"failed: {failed}" if method == "m3" and failed else "ok"
            rows.append(
                {"dataset": f"d.x={v}.s{s}", "method": method, "role": "control" if method == "truth" else "method",
                 "uses_labels": False, "representation": "embedding", "category": "total", "metric": "overall",
                 "scaling": "raw", "value": np.nan if status != "ok" else score, "note": "", "status": status}
            )  # fmt: skip
    return pd.DataFrame(rows)


def test_aggregate_scores_gives_the_mean_and_interval_per_sweep_value():
    table = scib_rows({"m1": [0.5, 0.6, 0.7, 0.1, 0.2, 0.3], "m3": [0] * 6}, failed="MemoryError: out of memory")
    out = aggregate_scores(table, replicates_table()).set_index(["method", "sweep_value"])
    row = out.loc[("m1", "1")]
    assert row["n_seeds"] == 3 and row["mean"] == pytest.approx(0.6) and row["sd"] == pytest.approx(0.1)
    assert row["ci_low"] == pytest.approx(0.6 - 4.302652729911275 * 0.1 / np.sqrt(3)) and row["status"] == "ok"
    assert out.loc[("m1", "2"), "mean"] == pytest.approx(0.2)
    failed = out.loc[("m3", "1")]
    assert (
        failed["n_seeds"] == 0
        and np.isnan(failed["mean"])
        and failed["status"] == "failed: MemoryError: out of memory (in 3 of 3 seeds)"
    )


def test_ranks_and_their_stability_over_seeds():
    # sweep value 1: m1 beats m2 in seeds 0 and 1, loses in seed 2; value 2: m2 always wins
    table = scib_rows({"m1": [0.9, 0.8, 0.1, 0.1, 0.1, 0.1], "m2": [0.5, 0.5, 0.5, 0.6, 0.7, 0.8], "truth": [1.0] * 6})
    tables = {"scib": table, "truth": table.iloc[0:0], "explain": table.iloc[0:0]}
    ranks = aspect_ranks(tables, replicates_table())
    overall = ranks[ranks["aspect"] == "scIB overall"]
    assert set(overall["seed"]) == {0, 1, 2} and overall.loc[overall["method"] == "truth", "rank"].isna().all()
    aspects = aggregate_aspects(overall).set_index(["method", "sweep_value"])
    assert aspects.loc[("m1", "1"), "modal_rank"] == 1 and aspects.loc[("m1", "1"), "rank_stability"] == pytest.approx(2 / 3)
    assert aspects.loc[("m2", "2"), "rank_stability"] == 1.0 and aspects.loc[("m2", "2"), "n_seeds"] == 3
    assert aspects["rank_stability"].dropna().between(0, 1).all()


def test_verdict_gives_intervals_over_seeds_and_names_ties():
    # m1 and m2 close and noisy (a paired test cannot separate them); m4 far below
    table = scib_rows(
        {
            "m1": [0.80, 0.70, 0.90, 0.80, 0.70, 0.90],
            "m2": [0.78, 0.75, 0.85, 0.78, 0.75, 0.85],
            "m4": [0.1, 0.12, 0.11, 0.1, 0.12, 0.11],
        }
    )
    seeds = replicates_table()[["dataset", "seed"]]
    table_by_seed = verdict(table, table.iloc[0:0], table.iloc[0:0], seeds=seeds)
    overall = table_by_seed[table_by_seed["aspect"] == "scIB overall"].set_index("method")
    assert overall.loc["m1", "n_seeds"] == 3 and overall.loc["m1", "ci_low"] < 0.8 < overall.loc["m1", "ci_high"]
    assert overall.loc["m2", "p_vs_best"] >= 0.05 and overall.loc["m4", "p_vs_best"] < 0.05
    cell = headline(table_by_seed).set_index("aspect").loc["scIB overall", "best, label-free"]
    assert cell.startswith("m1 (0.800 [") and "not distinguishable from m2 (p = " in cell and "m4" not in cell
    single = verdict(table, table.iloc[0:0], table.iloc[0:0])  # without replicates: as before, no intervals
    assert headline(single).set_index("aspect").loc["scIB overall", "best, label-free"] == "m1 (0.800)"


def test_default_config_dry_run_has_no_aggregate(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--dry-run", "--configfile",
         str(REPO / "config" / "config.yaml"), "--directory", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert "aggregate" not in run.stdout and "wildcards: dataset=interaction\n" in run.stdout


def test_bad_sweep_key_stops_the_workflow_naming_it(tmp_path):
    config = yaml.safe_load((REPO / "tests" / "configs" / "replicates.yaml").read_text())
    config["sweep"]["parameter"] = "batch_facloc"
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--dry-run", "--configfile",
         str(tmp_path / "c.yaml"), "--directory", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode != 0
    assert (
        "sweep: 'batch_facloc' is not a simulate key of dataset 'tiny'. Did you mean 'batch_facLoc'?" in run.stdout + run.stderr
    )


@pytest.mark.slow
def test_seeds_and_sweep_run_end_to_end(tmp_path):
    """Two seeds x two batch strengths of the tiny simulation, cheap methods: every replicate
    runs with its own seed, and the aggregates hold intervals over both seeds per sweep value."""
    config = REPO / "tests" / "configs" / "replicates.yaml"
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--cores", "2", "--configfile",
         str(config), "--directory", str(tmp_path)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    results = tmp_path / "results"
    import anndata as ad

    for seed in (0, 1):
        info = ad.read_h5ad(results / f"tiny.batch_facLoc=0.4.s{seed}" / "integrated" / "combat.h5ad", backed="r").uns["method"]
        assert info["seed"] == seed  # the replicate's seed reached the method
    scib = pd.read_csv(results / "aggregate" / "scib.csv")
    assert set(scib["base_dataset"]) == {"tiny"} and set(scib["sweep_value"]) == {0.1, 0.4}
    assert set(scib["method"]) == {"unintegrated", "label_shift", "combat", "truth"}
    ok = scib[scib["status"] == "ok"].dropna(subset=["mean"])
    assert (ok["n_seeds"] == 2).all() and (ok["ci_low"] <= ok["mean"]).all() and (ok["mean"] <= ok["ci_high"]).all()
    for name in ("expression", "de", "explain"):
        table = pd.read_csv(results / "aggregate" / f"{name}.csv")
        assert {"mean", "ci_low", "ci_high", "n_seeds"} <= set(table.columns) and (table["n_seeds"] <= 2).all()
    aspects = pd.read_csv(results / "aggregate" / "aspects.csv")
    overall = aspects[aspects["aspect"] == "scIB overall"]
    assert set(overall["sweep_value"]) == {0.1, 0.4} and (overall["n_seeds"] == 2).all()
    assert overall["rank_stability"].dropna().between(0, 1).all() and overall["rank_stability"].notna().any()
    ranks = pd.read_csv(results / "aggregate" / "ranks.csv")
    assert set(ranks["seed"]) == {0, 1}
    verdict_table = pd.read_csv(results / "verdict.csv")
    assert (verdict_table["n_seeds"] == 2).all() and verdict_table["ci_low"].notna().any()
    page = (results / "report.html").read_text()
    assert 'id="sweep"' in page and "Across seeds and the sweep" in page and "Student-t interval" in page

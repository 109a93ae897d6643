"""Job costs read from Snakemake's benchmark files."""

from workflow_scripts.report.cost import job_costs, stage_summary

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def test_job_costs_and_stage_summary(tmp_path):
    bench = tmp_path / "benchmarks" / "sim"
    (bench / "integrate").mkdir(parents=True)
    (bench / "dataset.tsv").write_text(HEADER + "2.5\t0:00:02\t300\t0\t0\t0\t0\t0\t0\t1\n")
    (bench / "integrate" / "scvi.tsv").write_text(HEADER + "100.0\t0:01:40\t900\t0\t0\t0\t0\t0\t0\t1\n")
    (bench / "integrate" / "harmony.tsv").write_text(HEADER + "5.0\t0:00:05\t500\t0\t0\t0\t0\t0\t0\t1\n")
    costs = job_costs(tmp_path).set_index(["stage", "step"])
    assert costs.loc[("integrate", "scvi"), "seconds"] == 100.0
    assert costs.loc[("dataset", "dataset"), "max_rss_mb"] == 300
    assert "integrate        105.0 s over 2 jobs" in stage_summary(tmp_path)


def test_no_benchmarks_yet(tmp_path):
    assert stage_summary(tmp_path) == "no benchmark files yet"

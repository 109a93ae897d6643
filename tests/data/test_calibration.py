"""The simulator reproduces real Splatter's statistics under the same parameters."""

from workflow_scripts.data.splat_calibration import compare_to_reference

TOLERANCE = {"library size": 0.05, "share of zeros": 0.03, "log10 var/mean": 0.08, "DE share": 0.04}


def test_matches_real_splatter(splatter_reference):
    table = compare_to_reference(splatter_reference)
    assert table.index.str.startswith("log10 var").sum() >= 5  # the trend is compared over its range
    for stat, row in table.iterrows():
        tol = next(v for k, v in TOLERANCE.items() if stat.startswith(k))
        assert abs(row.difference) < tol, f"{stat}: splatter {row.splatter:.4g}, python {row.python_mean:.4g}"

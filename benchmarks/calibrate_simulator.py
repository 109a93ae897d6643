"""Print how the Python Splat simulator compares with real Splatter output (same parameters).

Usage: .venv/bin/python benchmarks/calibrate_simulator.py [path/to/splatter_reference]
"""

import sys
from pathlib import Path

import pandas as pd

from workflow_scripts.data.splat_calibration import compare_to_reference

default = Path(__file__).resolve().parents[2] / "shared" / "reference" / "splatter_reference"
reference = Path(sys.argv[1]) if len(sys.argv) > 1 else default
with pd.option_context("display.width", 200, "display.max_columns", 10, "display.float_format", "{:.4g}".format):
    print(compare_to_reference(reference, seeds=range(5)))

"""Time the integration methods and the scIB metrics stage on a config's dataset, as the workflow
runs them: one fresh process per method and per scoring (imports and JIT compilation included),
one after another. Prints each time and the pivoted scIB table.

Usage: .venv/bin/python benchmarks/metrics_speed.py [--config config/config.yaml] [--dataset NAME]
       [--threads 2] [--score-threads 1] [--out /tmp/metrics_speed]
"""

import argparse
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
import yaml

from workflow_scripts.data.datasets import prepare_dataset
from workflow_scripts.integrate.run import failure_record_path, integrate
from workflow_scripts.score.scib import collect, score_to_csv
from workflow_scripts.score.table import read_failures


def in_fresh_process(function, *args):
    """Run ``function(*args)`` in a new interpreter and return its wall time in seconds."""
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        pool.submit(function, *args).result()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--dataset", help="default: the config's first dataset")
    parser.add_argument("--threads", type=int, default=2, help="threads of each integration")
    parser.add_argument("--score-threads", type=int, default=1, help="threads of each scoring")
    parser.add_argument("--out", default="/tmp/metrics_speed")
    args = parser.parse_args()
    config = yaml.safe_load(Path(args.config).read_text())
    name = args.dataset or next(iter(config["datasets"]))
    root = Path(args.out) / name
    data_path = root / "data.h5ad"
    prepare_dataset(name, config["datasets"][name], data_path, args.threads)

    times, csvs, failures = {}, [], []
    for method, params in config["methods"].items():
        integrated = root / "integrated" / f"{method}.h5ad"
        try:
            run = (integrate, data_path, method, integrated, params, config["seed"], args.threads)
            times[("integrate", method)] = in_fresh_process(*run)
        except Exception as err:  # reported in the table, as the workflow does
            print(f"{method} failed: {err}")
            failures.append(failure_record_path(integrated))
            continue
        csvs.append(root / "scores" / f"{method}.csv")
        times[("score", method)] = in_fresh_process(score_to_csv, data_path, integrated, csvs[-1], args.score_threads)
        print(f"{method}: integrate {times[('integrate', method)]:.1f} s, score {times[('score', method)]:.1f} s", flush=True)

    table = collect(csvs, read_failures(failures), root / "scib.csv", name)
    seconds = pd.Series(times).unstack(0)
    print(f"\nwall time per method, s (fresh process each; {args.threads} / {args.score_threads} threads):\n{seconds.round(1)}")
    print(f"total: integrate {seconds['integrate'].sum():.0f} s, metrics stage {seconds['score'].sum():.0f} s")
    pd.set_option("display.width", 200)
    rows = table.set_index(["category", "metric", "scaling", "representation", "method"])["value"]
    pivot = rows.unstack(["representation", "method"])
    print(f"\nscIB table of '{name}' ({root / 'scib.csv'}):\n{pivot.round(3).to_string()}")


if __name__ == "__main__":
    main()

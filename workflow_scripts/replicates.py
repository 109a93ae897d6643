"""Replicates and sweeps: the config's ``datasets``, ``seeds`` and ``sweep`` expanded into the
concrete datasets the workflow runs, each an independent set of (dataset, method) jobs.

A leaf module (no scanpy), imported by ``rules/common.smk``. Names are readable and safe as
Snakemake wildcards and file names (a base name holds only letters, digits, ``_`` and ``-``, so
``.`` separates the parts unambiguously):

* neither ``seeds`` nor ``sweep``: ``<base>`` (the default config's names and results unchanged);
* ``sweep``: ``<base>.<parameter>=<value>`` per value (``interaction.batch_facLoc=0.2``); a value
  that is not a number, string or bool (a list, e.g. ``group_prob``) is named by its position,
  ``=v1``, ``=v2``...;
* ``seeds``: ``.s<seed>`` appended (``interaction.s1``, ``interaction.batch_facLoc=0.2.s0``).

Each seed is both the method seed and an offset to the simulation's own seed (``simulate.seed``
+ seed), so replicates differ in data and in the methods' randomness.
"""

import copy
import difflib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from workflow_scripts.config_keys import ConfigError


@dataclass(frozen=True)
class Replicate:
    """One concrete dataset: its config entry (seed and swept value applied) and method seed."""

    name: str
    base: str  # the config's dataset name
    spec: dict
    seed: int  # the method seed
    sweep_parameter: str | None = None
    sweep_value: Any = None  # as configured
    sweep_label: str | None = None  # the value as tables show it (JSON text)


def _is_scalar(value) -> bool:
    return isinstance(value, int | float | str | bool)


def _value_part(value, index: int) -> str:
    return str(value) if _is_scalar(value) else f"v{index + 1}"


def _check_sweep(datasets: Mapping, sweep: Mapping, simulate_keys: Iterable[str] | None) -> list[str]:
    """The names of the datasets the sweep applies to, or a :class:`ConfigError` naming the
    dataset and the key it cannot sweep."""
    parameter, targets = sweep["parameter"], list(sweep.get("datasets", datasets))
    if parameter == "seed":
        raise ConfigError("sweep: parameter 'seed' is not swept; list the seeds under `seeds:` instead")
    labels = [_value_part(v, i) for i, v in enumerate(sweep["values"])]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"sweep: values of '{parameter}' repeat ({sweep['values']}); give each value once")
    for name in targets:
        if name not in datasets:
            raise ConfigError(f"sweep: datasets: '{name}' is not a dataset of the config (datasets: {list(datasets)})")
        if "simulate" not in datasets[name]:
            source = next((k for k in ("h5ad", "splatter_dir") if k in datasets[name]), "not simulated")
            raise ConfigError(
                f"sweep: dataset '{name}' is not simulated ({source}): sweep '{parameter}' changes a simulate "
                f"parameter. List the simulated datasets to sweep under sweep.datasets."
            )
        if simulate_keys is not None and parameter not in simulate_keys:
            close = difflib.get_close_matches(parameter, list(simulate_keys), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"sweep: '{parameter}' is not a simulate key of dataset '{name}'.{hint}")
    return targets


def expand_datasets(
    datasets: Mapping[str, Mapping],
    seeds: Iterable[int] | None = None,
    sweep: Mapping | None = None,
    default_seed: int = 0,
    simulate_keys: Iterable[str] | None = None,
) -> dict[str, Replicate]:
    """{name: :class:`Replicate`} of every concrete dataset, in config order (each base
    dataset's sweep values, each with its seeds). Without ``seeds`` the methods use
    ``default_seed`` (the config's ``seed``) and the simulation its own seed. ``simulate_keys``
    (the schema's Splat parameters) checks the swept key; the config is not changed."""
    swept = set(_check_sweep(datasets, sweep, simulate_keys)) if sweep else set()
    out = {}
    for base, spec in datasets.items():
        values = list(enumerate(sweep["values"])) if base in swept else [(None, None)]
        for index, value in values:
            for seed in seeds if seeds is not None else [None]:
                name, new = base, copy.deepcopy(dict(spec))
                if index is not None:
                    name += f".{sweep['parameter']}={_value_part(value, index)}"
                    new["simulate"][sweep["parameter"]] = value
                if seed is not None:
                    name += f".s{seed}"
                    if "simulate" in new:
                        new["simulate"]["seed"] = new["simulate"].get("seed", 0) + seed
                out[name] = Replicate(
                    name=name,
                    base=base,
                    spec=new,
                    seed=default_seed if seed is None else seed,
                    sweep_parameter=sweep["parameter"] if index is not None else None,
                    sweep_value=value,
                    sweep_label=json.dumps(value) if index is not None else None,
                )
    return out


def replicate_rows(replicates: Mapping[str, Replicate]) -> list[dict]:
    """One plain row per concrete dataset (rule params, the aggregate tables' keys)."""
    return [
        {
            "dataset": r.name,
            "base_dataset": r.base,
            "sweep_parameter": r.sweep_parameter or "",
            "sweep_value": r.sweep_label or "",
            "seed": r.seed,
        }
        for r in replicates.values()
    ]

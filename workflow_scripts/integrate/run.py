"""Run one integration method on one dataset and write ``results/<ds>/integrated/<method>.h5ad``.

The output follows ``DATA.md`` ("Outputs of an integration method"): the input's obs/var,
``obsm["X_emb"]``, ``layers["corrected"]`` for methods that return expression, and
``uns["method"]``. It holds neither ``X`` nor the truth layers: scoring reads those from the
dataset file, which keeps one copy of them. A method that fails leaves no .h5ad but a failure
record (:func:`failure_record_path`) that the score tables report. Rule ``integrate`` runs this file.
"""

import importlib
import json
import resource
import time
from pathlib import Path

import anndata as ad
import numpy as np
import scipy.sparse as sp

from genex_core._atomic import StaleOutputError
from workflow_scripts.atomic import write_h5ad_atomic
from workflow_scripts.names import CORRECTED, DATASET_UNS, EMBEDDING, METHOD_UNS
from workflow_scripts.registry import METHODS


def failure_record_path(output_path: str | Path) -> Path:
    """Where a failed method's record goes: ``<output without .h5ad>.failed.json``."""
    output_path = Path(output_path)
    return output_path.with_name(f"{output_path.stem}.failed.json")


def _peak_memory_mb() -> float:
    """Peak resident memory of this process so far (``ru_maxrss``, KiB on Linux), in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def runner(method: str):
    """The function that runs ``method`` (its registry entry's ``module:function``)."""
    if method not in METHODS:
        raise ValueError(f"unknown integration method '{method}'; known: {sorted(METHODS)}")
    module, function = METHODS[method].runner.split(":")
    return getattr(importlib.import_module(module), function)


def integrate(
    data_path: str | Path,
    method: str,
    output_path: str | Path,
    params: dict | None,
    seed: int,
    threads: int,
    model_dir: str | Path | None = None,
    pretrained: str | Path | None = None,
) -> ad.AnnData:
    """Run ``method`` on the dataset at ``data_path`` and write its output to ``output_path``
    (and its trained model to ``model_dir``, for a method that saves one). ``pretrained`` is the
    saved model of the method it starts from (registry ``starts_from``).

    ``uns["method"]["peak_memory_mb"]`` is the process's peak resident memory when the method
    ends: it includes the interpreter, the libraries the method imports (torch for scVI) and the
    loaded dataset, as Snakemake's ``benchmark:`` max_rss does; ``wall_time_s`` times the method
    alone (no file I/O). On failure a record {method, dataset, reason, wall_time_s} is written to
    :func:`failure_record_path` and the error re-raised.
    """
    failure = failure_record_path(output_path)
    failure.unlink(missing_ok=True)
    dataset = Path(data_path).parent.name
    start = time.perf_counter()
    try:
        run = runner(method)
        data = ad.read_h5ad(data_path)
        info = dict(data.uns[DATASET_UNS])
        dataset = info.get("name", dataset)
        params = dict(params or {}, **({"pretrained": pretrained} if pretrained is not None else {}))
        start = time.perf_counter()
        result = run(data, info["batch_key"], info["label_key"], seed=seed, threads=threads, **params)
        wall_time = time.perf_counter() - start
        out = ad.AnnData(obs=data.obs.copy(), var=data.var.copy())
        out.obsm[EMBEDDING] = np.asarray(result.embedding, dtype=np.float32)
        expected = METHODS[method].returns_expression
        if (result.corrected is not None) != expected:
            said = "returned no" if result.corrected is None else "returned"
            raise RuntimeError(f"{method} {said} corrected expression, against its registry entry")
        if result.corrected is not None:
            corrected = result.corrected.toarray() if sp.issparse(result.corrected) else result.corrected
            out.layers[CORRECTED] = np.asarray(corrected, dtype=np.float32)
        out.uns[DATASET_UNS] = info
        out.uns[METHOD_UNS] = {
            "name": method,
            "version": result.version,
            "params": result.params,
            "seed": seed,
            "wall_time_s": wall_time,
            "peak_memory_mb": _peak_memory_mb(),
            "returns_expression": expected,
            "uses_labels": METHODS[method].uses_labels,
        }
        if model_dir is not None:
            if result.model is None:
                raise RuntimeError(f"{method} returned no model to save in {model_dir}")
            result.model.save(model_dir, overwrite=True)
        write_h5ad_atomic(out, output_path)
    except StaleOutputError:
        raise  # an orphaned job of an older run: the newer output stands, and so does its record
    except Exception as err:
        reason = f"{type(err).__name__}: {err}"
        record = {"method": method, "dataset": dataset, "reason": reason, "wall_time_s": time.perf_counter() - start}
        failure.parent.mkdir(parents=True, exist_ok=True)
        failure.write_text(json.dumps(record, indent=1))
        raise
    peak = out.uns[METHOD_UNS]["peak_memory_mb"]
    print(f"{method} on '{dataset}': {wall_time:.1f} s, peak memory {peak:.0f} MiB -> {output_path}", flush=True)
    return out


if __name__ == "__main__":
    from workflow_scripts.rule_log import log_to_file

    smk = snakemake  # noqa: F821 (injected by Snakemake's script: directive)
    with log_to_file(smk.log[0]):
        integrate(
            smk.input.data,
            smk.params.method,
            smk.output.integrated,
            smk.params.params,
            smk.params.seed,
            smk.threads,
            model_dir=smk.output.get("model"),
            pretrained=smk.input.get("pretrained"),
        )

"""Results are written whole or not at all, and never over a newer job's."""

from pathlib import Path

import anndata as ad

from genex_core._atomic import replace_atomically


def write_h5ad_atomic(adata: ad.AnnData, path: str | Path, started_ns: int | None = None) -> None:
    """Write next to ``path`` and rename into place, so no half-written file survives.

    Refuses (:class:`genex_core._atomic.StaleOutputError`) to replace a file that a job
    started after this one wrote, e.g. when this job is an orphan of a killed Snakemake run,
    and removes the temporary files killed jobs left (:func:`genex_core._atomic.replace_atomically`).
    ``started_ns``: this job's start, default this process's.
    """
    replace_atomically(adata.write_h5ad, path, started_ns)

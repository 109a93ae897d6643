"""Atomic file replacement that an orphaned writer cannot use to overwrite newer results.

A file is written to a hidden ``.<name>.<pid>.tmp`` next to its target, then renamed into
place, so no half-written file survives. Before the rename the writer checks that the file it
would replace was not made by a writer that *started later* than itself: an orphaned job of a
killed Snakemake run (still running, ``kill -9`` does not reach it) must not replace what a
newer run wrote in the meantime. For that, every replaced file gets the writer's start time
as its modification time, and the check refuses to replace a file whose modification time is
later than the writer's start. (Snakemake touches a finished job's outputs, which only makes
them newer.) Either order works: an orphan that finishes first is replaced by the newer job;
one that finishes last is refused.

Hidden ``.tmp`` files that a killed writer left (its process no longer exists) are removed by
the next write to the same target.
"""

import os
import re
import sys
import time
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from pathlib import Path

_IMPORTED_NS = time.time_ns()


class StaleOutputError(FileExistsError):
    """The target was written by a writer that started after this one; not replaced."""


@lru_cache(maxsize=1)
def process_start_ns() -> int:
    """Wall-clock start of this process in ns (from ``/proc``; where that is unavailable, the
    time this module was imported). Cached: one value per process."""
    try:
        after_name = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started_ticks = int(after_name[19])  # field 22 of proc(5), counted from field 3
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        age_s = uptime - started_ticks / os.sysconf("SC_CLK_TCK")
        return min(time.time_ns() - int(age_s * 1e9), _IMPORTED_NS)
    except (OSError, ValueError, IndexError):
        return _IMPORTED_NS


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def temporary_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def remove_leftovers(path: Path) -> list[Path]:
    """Remove the hidden ``.<name>.<pid>.tmp`` files of ``path`` whose writer is gone (killed);
    those of a live process (perhaps an orphaned job still running) stay. Returns the removed."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)\.tmp")
    removed = []
    if path.parent.is_dir():
        for candidate in path.parent.iterdir():
            match = pattern.fullmatch(candidate.name)
            if match and int(match[1]) != os.getpid() and not _alive(int(match[1])):
                candidate.unlink(missing_ok=True)
                removed.append(candidate)
    if removed:
        print(
            f"removed {len(removed)} temporary file(s) a killed job left: {[p.name for p in removed]}",
            file=sys.stderr,
            flush=True,
        )
    return removed


def _time(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9).isoformat(sep=" ", timespec="seconds")


def check_not_newer(path: Path, started_ns: int) -> None:
    """Raise :class:`StaleOutputError` if ``path`` exists and was modified after ``started_ns``."""
    try:
        modified = path.stat().st_mtime_ns
    except FileNotFoundError:
        return
    if modified > started_ns:
        raise StaleOutputError(
            f"not replacing {path}: it was written at {_time(modified)}, after this job started ({_time(started_ns)}), "
            "so a newer run made it (this job is probably an orphan of a killed Snakemake run). "
            "This job's result is dropped; end the orphaned process (see `ps`) and rerun if the file is in doubt."
        )


def replace_atomically(write: Callable[[Path], None], path: str | Path, started_ns: int | None = None) -> Path:
    """``write(tmp)`` then rename ``tmp`` onto ``path``, unless ``path`` is newer than
    ``started_ns`` (default: this process's start; see the module docstring). The new file's
    modification time is ``started_ns``. On any failure the temporary file is removed."""
    path = Path(path)
    started_ns = process_start_ns() if started_ns is None else started_ns
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path)
    check_not_newer(path, started_ns)  # fail before the work of writing, too
    tmp = temporary_path(path)
    try:
        write(tmp)
        os.utime(tmp, ns=(time.time_ns(), started_ns))
        check_not_newer(path, started_ns)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path

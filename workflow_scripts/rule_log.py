"""Send a rule script's output to its ``log:`` file, and its error to the console too."""

import contextlib
import sys
import traceback


@contextlib.contextmanager
def log_to_file(path: str):
    """Redirect stdout and stderr into ``path``; on failure log the traceback, echo the error
    message to the console (where a Snakemake user looks first) and re-raise."""
    console = sys.__stderr__
    with open(path, "w", buffering=1) as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        try:
            yield
        except BaseException as err:
            traceback.print_exc(file=log)
            print(f"ERROR: {type(err).__name__}: {err} (log: {path})", file=console, flush=True)
            raise

"""Snakemake entry of the figure rules: ``params.jobs`` lists (figure, png, pdf, draw
arguments) from the figure table of ``rules/report.smk``; each is drawn and saved in turn."""

import time

from workflow_scripts.report.figures import make_figure
from workflow_scripts.rule_log import log_to_file

NOT_DRAW_ARGUMENTS = {"after"}  # inputs that only order the job (the cost figure waits for every stage)

if __name__ == "__main__":
    smk = snakemake  # noqa: F821 (injected by Snakemake's script: directive)
    with log_to_file(smk.log[0]):
        for key, png, pdf, args in smk.params.jobs:
            start = time.perf_counter()
            make_figure(key, png, pdf, **{k: v for k, v in args.items() if k not in NOT_DRAW_ARGUMENTS})
            print(f"{png}: {time.perf_counter() - start:.1f} s", flush=True)

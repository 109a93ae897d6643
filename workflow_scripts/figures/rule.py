"""Snakemake entry of every figure rule: ``params.figure`` names it, the rule's named inputs
and ``params.options`` are its draw function's arguments."""

from workflow_scripts.figures import make_figure
from workflow_scripts.rule_log import log_to_file

if __name__ == "__main__":
    smk = snakemake  # noqa: F821 (injected by Snakemake's script: directive)
    with log_to_file(smk.log[0]):
        make_figure(smk.params.figure, smk.output.png, smk.output.pdf, **dict(smk.input.items()), **smk.params.options)

"""Rule ``paper_claims``: our measurements beside the published values and which of the
paper's claims reproduce (:mod:`workflow_scripts.score.paper`) -> ``output.comparison``
(``results/paper_comparison.csv``) and ``output.claims`` (``results/paper_claims.csv``), each
written whole or not at all."""

if __name__ == "__main__":
    from workflow_scripts.rule_log import log_to_file
    from workflow_scripts.score.paper import paper_tables
    from workflow_scripts.score.table import write_table

    smk = snakemake  # noqa: F821 (injected by Snakemake's script: directive)
    with log_to_file(smk.log[0]):
        i = smk.input
        table, found = paper_tables(i.published, i.scib, i.truth, list(i.de), list(i.genes))
        write_table(table, smk.output.comparison)
        write_table(found, smk.output.claims)

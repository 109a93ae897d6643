# GENEX benchmark: simulate or import datasets -> integrate -> score -> report.
# Run: snakemake --cores 2   (or `make benchmark`, which also installs the pinned stack)
from snakemake.utils import min_version

min_version("9.0")


# The default config, unless one is given with --configfile (which would otherwise be merged
# into it, adding the default datasets to a test or user config).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/integrate.smk"
include: "rules/score.smk"
include: "rules/de.smk"
include: "rules/explain.smk"
include: "rules/aggregate.smk"
include: "rules/figure_table.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        all_targets(),


onsuccess:
    from workflow_scripts.report.cost import stage_summary

    print(stage_summary())

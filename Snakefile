# xinc: the implicit neural canvas of NeRV and FFN models, from data to figures.
# Usage: `snakemake --cores all` (embedded synthetic demo), `--configfile presets/paper.yaml`.
from snakemake.utils import min_version

min_version("9.0")


configfile: f"{workflow.basedir}/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"


# While the frames of some videos are unknown (before select_videos): the data stage only.
if not PENDING:

    include: "workflow/rules/plan.smk"
    include: "workflow/rules/train.smk"
    include: "workflow/rules/canvas.smk"
    include: "workflow/rules/analysis.smk"
    include: "workflow/rules/clusters.smk"
    include: "workflow/rules/explorer.smk"
    include: "workflow/rules/figures.smk"
    include: "workflow/rules/tables.smk"
    include: "workflow/rules/run.smk"


rule all:
    default_target: True
    input:
        DATA_TARGETS
        if PENDING
        else [FIGURES, TABLES, STATS, EXPLORER_PAGE, CONFIG_RECORD],

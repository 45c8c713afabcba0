"""Rule pixel_groups: instance, RGB, Gabor and grid-cell groupings of one analysed frame."""

from _rule import start

start(snakemake)

from xinc.workflow_steps import make_pixel_groups

stats = snakemake.params.stats
make_pixel_groups(
    snakemake.input.frames,
    snakemake.input.panoptic,
    snakemake.input.meta,
    int(snakemake.wildcards.f),
    snakemake.output.groups,
    clusters=stats["clusters"],
    grid=stats["grid"],
    seed=stats["seed"],
    gabor_mode=stats["gabor"],
    threads=snakemake.threads,
)

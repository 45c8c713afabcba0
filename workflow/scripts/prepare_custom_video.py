"""Rule prepare_custom_video: one of your videos -> the common per-video format."""

from pathlib import Path

from _rule import start

start(snakemake)

from xinc.data.stage import prepare_custom

prepare_custom(
    snakemake.wildcards.vid,
    snakemake.params.entry,
    Path(snakemake.output.meta).parent,
    crop=snakemake.params.crop,
    working_size=snakemake.params.size,
)

"""Rule prepare_video: one video of an official layout → the common per-video format."""

from pathlib import Path

from _rule import start

start(snakemake)

from xinc.data import prepare_video

prepare_video(
    snakemake.wildcards.ds,
    snakemake.input.root,
    snakemake.wildcards.vid,
    Path(snakemake.output.meta).parent,
    crop=snakemake.params.crop,
)

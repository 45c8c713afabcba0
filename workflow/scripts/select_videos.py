"""Rule select_videos: every candidate video of a dataset, whether it is analysed and why."""

from _rule import start

start(snakemake)

from xinc.data.stage import select_videos

select_videos(
    snakemake.wildcards.ds,
    dict(snakemake.input),
    snakemake.params.settings,
    snakemake.output.videos,
    snakemake.output.categories,
)

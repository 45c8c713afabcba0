"""Rule flow: OpenCV optical flow from raw frame t − 1 to t at working resolution."""

from _rule import start

start(snakemake)

from xinc.flow import video_flow

video_flow(
    snakemake.input.frames,
    int(snakemake.wildcards.t),
    snakemake.output.flow,
    method=snakemake.params.method,
)

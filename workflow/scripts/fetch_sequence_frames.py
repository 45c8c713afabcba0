"""Rule fetch_sequence_frames: the analysed Cityscapes-VPS videos' frames from the sequence
package (remote_zip: over HTTP Range; full: the whole archive)."""

from pathlib import Path

from _rule import start

start(snakemake)

from xinc.data.stage import fetch_sequence_frames

fetch_sequence_frames(
    Path(snakemake.input.vps).parent,
    snakemake.input.videos,
    snakemake.output[0],
    mode=snakemake.params.mode,
    source=snakemake.params.source,
    downloads=snakemake.config["downloads"],
)

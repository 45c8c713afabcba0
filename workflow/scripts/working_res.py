"""Rule working_res: frames and labels of one prepared video at the working resolution."""

from pathlib import Path

from _rule import start

start(snakemake)

from xinc.data import working_resolution

height, width = snakemake.params.size
working_resolution(
    Path(snakemake.input.meta).parent, Path(snakemake.output.meta).parent, height, width
)

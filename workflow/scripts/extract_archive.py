"""Rule extract_archive: unpack one archive safely (and its nested *_gt.zip) into data/raw/."""

from pathlib import Path

from _rule import start

start(snakemake)

from xinc.data.stage import extract_archive

extract_archive(snakemake.input[0], Path(snakemake.output[0]).parent)

"""Rules official_prep_<dataset>: one video of the extracted archives -> the official prepared
layout (our implementation of the official preparation scripts)."""

from pathlib import Path

from _rule import start

start(snakemake)

from xinc.data.stage import official_prep

official_prep(
    snakemake.rule.removeprefix("official_prep_"),
    {key: value for key, value in snakemake.input.items()},
    snakemake.wildcards.vid,
    Path(snakemake.output[0]),
    **dict(snakemake.params.items()),
)

"""Rule run_config: record the resolved config of this run in its results folder."""

from _rule import start

start(snakemake)

from xinc.config import write_config

write_config(snakemake.output[0], snakemake.params.config)

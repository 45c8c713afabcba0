"""Rule run_config: record the resolved config of this run in its results folder, and its
provenance: the config's hash, the version of this source tree and the hashes of its inputs."""

from _rule import PROJECT_ROOT, start

start(snakemake)

from xinc.config import write_config
from xinc.provenance import write_provenance

write_config(snakemake.output.config, snakemake.params.config)
write_provenance(
    snakemake.output.provenance,
    snakemake.output.config,
    snakemake.input,
    PROJECT_ROOT,
)

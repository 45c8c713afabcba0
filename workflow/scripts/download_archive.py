"""Rule download_archive: one official archive, verified, in data/downloads/ (credentials,
archive_dir and retries are read here, never passed as params)."""

from pathlib import Path

from _rule import start

start(snakemake)

from xinc.data.stage import download_archive

download_archive(
    snakemake.params.source,
    Path(snakemake.output.archive).parent,
    snakemake.config["downloads"],
)

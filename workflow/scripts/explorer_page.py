"""Rule explorer: the page (index.html, explorer.js, explorer.css), its manifest of every
model's data and the cluster scatters (xinc.explorer.page)."""

from pathlib import Path

from _rule import start

start(snakemake)

from xinc.explorer import write_page

write_page(
    Path(snakemake.output.page[0]).parent,  # results/<run>/explorer
    list(snakemake.input.models),
    list(snakemake.input.clusters),
    snakemake.params.run,
)

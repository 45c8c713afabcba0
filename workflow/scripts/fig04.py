"""Rule fig04: variance of neuron contribution differences per pixel grouping."""

from _rule import start

start(snakemake)

from xinc.plots import fig04, pair_inputs

fig04.render(
    pair_inputs(snakemake.input.stats, snakemake.params.panels),
    snakemake.output.png,
    snakemake.output.csv,
    grid=snakemake.params.grid,
)

"""Rule fig06: pixels per neuron, sorted, per layer."""

from _rule import start

start(snakemake)

from xinc.plots import fig06, pair_inputs

fig06.render(
    pair_inputs(snakemake.input.stats, snakemake.params.panels),
    snakemake.output.png,
    snakemake.output.csv,
    snakemake.output.summary,
)

"""Rule fig03: contribution maps of sample neurons, from the per-frame statistics."""

from _rule import start

start(snakemake)

from xinc.plots import fig03, pair_inputs

fig03.render(
    pair_inputs(snakemake.input.stats, snakemake.params.panels),
    snakemake.output.png,
    snakemake.output.csv,
    max_neurons=snakemake.params.neurons,
)

"""Rule synth_dataset: write one embedded synthetic dataset in its official layout."""

from _rule import start

start(snakemake)

from xinc.data import generate

generate(
    snakemake.wildcards.ds,
    snakemake.output.root,
    snakemake.output.truth,
    seed=snakemake.params.seed,
    scale=snakemake.params.scale,
)

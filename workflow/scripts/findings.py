"""Rule findings: the paper's claims restated as measured numbers over every video and seed."""

from _rule import start

start(snakemake)

from xinc.findings import findings_from_files
from xinc.plots import by_key, pair_inputs

labels = snakemake.params.labels
findings_from_files(
    pair_inputs(snakemake.input.stats, labels["panels"]),
    pair_inputs(snakemake.input.nerv_stats, labels["nerv_panels"]),
    by_key(labels["masked"], snakemake.input.tables),
    snakemake.input.pairs,
    by_key(labels["flows"], snakemake.input.flows),
    by_key(labels["videos"], snakemake.input.frames),
    snakemake.output.csv,
    clusters=snakemake.input.clusters,
    masked={tuple(pair) for pair in labels["masked"]},
    **snakemake.params.options,
)

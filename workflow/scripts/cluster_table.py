"""Rule cluster_table: the trust measures of every clustered layer, one row per cluster."""

from _rule import start

start(snakemake)

from xinc.cluster.jobs import cluster_table

cluster_table(snakemake.input.clusters, snakemake.output.csv)

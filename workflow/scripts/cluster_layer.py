"""Rule cluster_layer: UMAP + k-means of one layer's neurons over a set of seeds (or of every
layer of both architectures), with the trust measures."""

from _rule import start

start(snakemake)

from xinc.cluster.jobs import cluster_layer

w = snakemake.wildcards
cluster_layer(
    snakemake.input.stats,
    snakemake.output.npz,
    snakemake.output.csv,
    settings=snakemake.params.settings,
    feature=snakemake.params.feature,
    mix=snakemake.params.mix,
    untrained=snakemake.input.get("untrained", []),
    meta={
        "dataset": w.ds,
        "video": w.vid,
        "frame": int(w.f),
        "arch": w.arch,
        "layer": w.layer,
        "seeds": [int(seed) for seed in w.seedset.split("-")],
    },
    threads=snakemake.threads,
)

"""Rules cluster_members_{ffn,nerv}: members of each shown cluster of every layer, with their
contribution maps computed from the checkpoints (a few maps, not the layers' canvases)."""

import torch
from _rule import start

start(snakemake)

from xinc.cluster.jobs import cluster_members

torch.set_num_threads(snakemake.threads)
seeds = [int(seed) for seed in snakemake.wildcards.seedset.split("-")]
draw = snakemake.params.draw
cluster_members(
    snakemake.input.clusters,
    dict(zip(seeds, snakemake.input.ckpts, strict=True)),
    snakemake.input.meta,
    snakemake.output.npz,
    snakemake.output.csv,
    shown=draw["shown"],
    per_cluster=draw["members"],
    draw=draw["draw"],
    seed=draw["seed"],
    canvas=snakemake.params.canvas,
    device=snakemake.config["device"],
)

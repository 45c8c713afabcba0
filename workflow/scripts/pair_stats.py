"""Rule pair_stats: per-pixel contribution change Δ_t between raw frames t − 1 and t of a
NeRV, one file per layer (both canvases streamed in lockstep, never written)."""

import torch
from _rule import start

start(snakemake)

from xinc.workflow_steps import pair_stats

torch.set_num_threads(snakemake.threads)
pair_stats(
    snakemake.input.ckpt,
    snakemake.input.meta,
    int(snakemake.wildcards.t),
    snakemake.output.delta,
    snakemake.params.layers,
    canvas={**snakemake.params.canvas, "chunk": snakemake.config["canvas"]["chunk"]},
    device=snakemake.config["device"],
)

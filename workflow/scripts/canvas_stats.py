"""Rules canvas_nerv / canvas_ffn: every layer's maps of one model at one frame, streamed
into per-frame statistics (the canvas itself is never written)."""

import torch
from _rule import start

start(snakemake)

from xinc.tasks import canvas_stats

torch.set_num_threads(snakemake.threads)
canvas_stats(
    snakemake.input.ckpt,
    snakemake.input.groups,
    snakemake.input.meta,
    int(snakemake.wildcards.f),
    snakemake.output.stats,
    snakemake.params.layers,
    canvas={**snakemake.params.canvas, "chunk": snakemake.config["canvas"]["chunk"]},
    stats=snakemake.params.stats,
    device=snakemake.config["device"],
    untrained=snakemake.params.get("untrained", False),
)

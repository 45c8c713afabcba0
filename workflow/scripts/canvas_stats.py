"""Rules canvas_stats_<arch>_<dataset> (every analysed frame of one model, or of a video's FFNs)
and canvas_stats_<arch>_untrained (one frame): every layer's maps, streamed into per-frame
statistics (the canvas itself is never written)."""

import torch
from _rule import listed, start

start(snakemake)

from xinc.workflow_steps import canvas_model_stats


torch.set_num_threads(snakemake.threads)
canvas_model_stats(
    listed(snakemake.input.ckpt),
    listed(snakemake.input.groups),
    snakemake.input.meta,
    snakemake.params.frames,
    snakemake.output.stats,
    snakemake.params.layers,
    canvas={**snakemake.params.canvas, "chunk": snakemake.config["canvas"]["chunk"]},
    stats=snakemake.params.stats,
    device=snakemake.config["device"],
    untrained=snakemake.params.get("untrained", False),
)

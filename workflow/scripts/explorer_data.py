"""Rules explorer_data_<arch>_<dataset>: the explorer's data of one model (a NeRV over its
analysed frames, or the FFNs of one video and seed): every pixel's top-k neurons per layer and
the kept maps (xinc.explorer.job)."""

from pathlib import Path

import torch
from _rule import listed, start

start(snakemake)

from xinc.explorer import explorer_model_data


torch.set_num_threads(snakemake.threads)
explorer_model_data(
    listed(snakemake.input.ckpt),
    listed(snakemake.input.stats),
    listed(snakemake.input.groups),
    snakemake.input.frames,
    snakemake.input.meta,
    listed(snakemake.input.members),
    Path(snakemake.output.files[0]).parent,  # the model's folder: model.json comes first
    {
        "arch": snakemake.params.arch,
        "dataset": snakemake.wildcards.ds,
        "video": snakemake.wildcards.vid,
        "seed": int(snakemake.wildcards.seed),
    },
    snakemake.params.frames,
    snakemake.params.layers,
    canvas={**snakemake.params.canvas, "chunk": snakemake.config["canvas"]["chunk"]},
    explorer=snakemake.params.explorer,
    device=snakemake.config["device"],
)

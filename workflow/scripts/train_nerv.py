"""Rule train_nerv: fit one NeRV to every frame of one video."""

import torch
from _rule import start

start(snakemake)

from xinc.intermediate import read_json
from xinc.train import train_nerv
from xinc.workflow_steps import load_nerv_frames

torch.set_num_threads(snakemake.threads)
meta = read_json(snakemake.input.meta)
train_nerv(
    load_nerv_frames(snakemake.input.frames),
    snakemake.params.model,
    snakemake.params.train,
    seed=int(snakemake.wildcards.seed),
    ckpt_path=snakemake.output.ckpt,
    metrics_path=snakemake.output.metrics,
    device=snakemake.config["device"],
    meta={"dataset": meta["dataset"], "video": meta["video"]},
)

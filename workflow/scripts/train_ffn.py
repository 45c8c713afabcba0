"""Rules train_ffn_<dataset>: fit every FFN of one video (analysed frames × seeds) as one
batched model; each model is written as its own checkpoint + metrics."""

import numpy as np
import torch
from _rule import start

start(snakemake)

from xinc.intermediate import read_json, read_npy
from xinc.train import train_ffn_batch

torch.set_num_threads(snakemake.threads)
meta = read_json(snakemake.input.meta)
frames = read_npy(snakemake.input.frames, mmap_mode="r")
frame_ids = list(snakemake.params.frames)
train_ffn_batch(
    np.ascontiguousarray(frames[frame_ids]),
    snakemake.params.model,
    snakemake.params.train,
    seeds=list(snakemake.params.seeds),
    frame_ids=frame_ids,
    outputs=list(zip(snakemake.output.ckpts, snakemake.output.metrics, strict=True)),
    device=snakemake.config["device"],
    meta={"dataset": meta["dataset"], "video": meta["video"], "frames": meta["T"]},
    state_path=f"{snakemake.output.ckpts[0]}.batch.state",
)

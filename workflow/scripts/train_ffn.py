"""Rule train_ffn: fit one FFN to one frame of one video."""

import numpy as np
import torch
from _rule import start

start(snakemake)

from xinc.tasks import read_json
from xinc.train import train_ffn

torch.set_num_threads(snakemake.threads)
meta = read_json(snakemake.input.meta)
frame = int(snakemake.wildcards.f)
frames = np.load(snakemake.input.frames, mmap_mode="r")
train_ffn(
    np.ascontiguousarray(frames[frame]),
    snakemake.params.model,
    snakemake.params.train,
    seed=int(snakemake.wildcards.seed),
    ckpt_path=snakemake.output.ckpt,
    metrics_path=snakemake.output.metrics,
    device=snakemake.params.device,
    meta={"dataset": meta["dataset"], "video": meta["video"], "frame": frame,
          "frames": meta["T"]},
)

"""Training of NeRV (one per video) and FFN (one per frame) models, seeded and reproducible."""

from xinc.device import reproducible, resolve_device
from xinc.train.ffn import FFNTrainConfig, train_ffn
from xinc.train.ffn_batched import train_ffn_batch
from xinc.train.metrics import psnr, psnr_per_frame, quantize_8bit
from xinc.train.nerv import NeRVTrainConfig, train_nerv
from xinc.train.resume import default_state_path
from xinc.train.schedule import warmup_cosine_lr

__all__ = [
    "FFNTrainConfig",
    "NeRVTrainConfig",
    "default_state_path",
    "psnr",
    "psnr_per_frame",
    "quantize_8bit",
    "reproducible",
    "resolve_device",
    "train_ffn",
    "train_ffn_batch",
    "train_nerv",
    "warmup_cosine_lr",
]

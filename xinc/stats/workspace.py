"""Named scratch tensors reused across the chunks of a stream (fresh chunk-sized tensors cost
page faults on every chunk)."""

from __future__ import annotations

import math

import torch


class Workspaces:
    """One flat buffer per name, grown when a request does not fit; `get` returns a view."""

    def __init__(self) -> None:
        self._buffers: dict[str, torch.Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], like: torch.Tensor,
            dtype: torch.dtype | None = None) -> torch.Tensor:
        """Uninitialised [shape] view of buffer `name` (dtype of `like` unless given, its
        device); overwritten by the next request for the same name."""
        dtype = like.dtype if dtype is None else dtype
        size = math.prod(shape)
        buf = self._buffers.get(name)
        if buf is None or buf.numel() < size or buf.dtype != dtype or buf.device != like.device:
            buf = torch.empty(size, dtype=dtype, device=like.device)
            self._buffers[name] = buf
        return buf[:size].view(shape)

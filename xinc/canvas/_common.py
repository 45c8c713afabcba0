"""Helpers shared by the per-architecture canvas modules."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Sequence

import torch

BIAS_MODES = ("split", "separate")
NEURON_MODES = ("kernel", "channel")


def check_switches(bias: str, neuron: str) -> None:
    """ValueError unless `bias` ∈ BIAS_MODES and `neuron` ∈ NEURON_MODES."""
    if bias not in BIAS_MODES:
        raise ValueError(f"unknown bias mode {bias!r}; expected one of {BIAS_MODES}")
    if neuron not in NEURON_MODES:
        raise ValueError(f"unknown neuron mode {neuron!r}; expected one of {NEURON_MODES}")


def mode_fn(modes: dict[str, Callable], mode: str) -> Callable:
    """The map function registered for `mode` (ValueError if there is none)."""
    if mode not in modes:
        raise ValueError(f"unknown canvas mode {mode!r}; expected one of {sorted(modes)}")
    return modes[mode]


def id_chunks(total: int, chunk: int, device: torch.device,
              ids: Sequence[int] | None = None) -> Iterator[torch.Tensor]:
    """Consecutive neuron-id ranges [start, start + chunk) covering 0 … total − 1; or, given
    `ids`, those ids in their order, `chunk` at a time (each checked to lie in 0 … total − 1)."""
    if ids is None:
        for start in range(0, total, chunk):
            yield torch.arange(start, min(start + chunk, total), device=device)
        return
    wanted = torch.as_tensor(list(ids), dtype=torch.int64)
    bad = wanted[(wanted < 0) | (wanted >= total)]
    if len(bad):
        raise ValueError(f"neuron ids {bad.tolist()[:5]} outside 0 … {total - 1}")
    for start in range(0, len(wanted), chunk):
        yield wanted[start:start + chunk].to(device)


def fill_chunks(out: torch.Tensor, shape: tuple[int, ...], chunk: int,
                write: Callable[[torch.Tensor, torch.Tensor], object]) -> torch.Tensor:
    """Check that `out` is a contiguous tensor of `shape`, then `write(ids, out[ids])` for
    consecutive id chunks covering its first axis (each part a contiguous view)."""
    if tuple(out.shape) != tuple(shape) or not out.is_contiguous():
        raise ValueError(f"out must be a contiguous {list(shape)} tensor, got "
                         f"{list(out.shape)}")
    for ids in id_chunks(shape[0], chunk, out.device):
        write(ids, out[int(ids[0]):int(ids[-1]) + 1])
    return out


def rescale_gain(act: torch.nn.Module, z: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Fixed gain g(z) = act(z)/z of the rescale rule (docs/method.md §4.1), so act(z) = g·z.

    GELU: GELU(z)/z, 0.5 (its limit) where |z| < eps; ReLU: 1[z > 0]; Identity: 1.
    """
    if isinstance(act, torch.nn.Identity):
        return torch.ones_like(z)
    if isinstance(act, torch.nn.ReLU):
        return (z > 0).to(z.dtype)
    if isinstance(act, torch.nn.GELU):
        small = z.abs() < eps
        return torch.where(small, torch.full_like(z, 0.5), act(z) / torch.where(small, 1.0, z))
    raise TypeError(f"no rescale gain for activation {type(act).__name__}")


class InputCache:
    """Small cache of values derived from layer input tensors (the `slots` most recent).

    `iter_canvas` hands the same input tensor to the map function for every chunk, and each
    statistics pass recomputes an equal one; exact modes keep the forward-pass quantities they
    derive from it (gains, path matrices, probe blocks) here, the reference mode its pieces
    and workspaces. Two slots serve two frames streamed in lockstep (`pair_change`). A hit
    needs the same model (same parameter versions), the same layer key and an input equal in
    value (a small tensor: the layer's input, not its maps).
    """

    def __init__(self, slots: int = 2) -> None:
        self.slots = slots
        self._entries: list[tuple[tuple, torch.Tensor, object]] = []  # most recent last

    @staticmethod
    def _hit(entry: tuple[tuple, torch.Tensor, object], x: torch.Tensor,
             model: torch.nn.Module, layer, versions: tuple) -> bool:
        key, cached, _ = entry
        if key[0]() is not model or key[1] != layer or key[2] != versions:
            return False
        return cached.shape == x.shape and cached.dtype == x.dtype and \
            cached.device == x.device and bool(torch.equal(cached, x))

    def get(self, x: torch.Tensor, model: torch.nn.Module, layer, build: Callable):
        versions = tuple(p._version for p in model.parameters())
        for i, entry in enumerate(self._entries):
            if self._hit(entry, x, model, layer, versions):
                self._entries.append(self._entries.pop(i))
                return entry[2]
        if len(self._entries) >= self.slots:
            self._entries.pop(0)
        value = build()
        self._entries.append(((weakref.ref(model), layer, versions), x.detach().clone(), value))
        return value

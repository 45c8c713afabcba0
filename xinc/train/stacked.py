"""M FFNs as one model: stacked weights, shared Fourier features, chunked gradients.

The weights of M FFNs are stacked ([M, out, in] per layer) and trained by one Adam over the
stacked tensors with loss Σ_m MSE_m. Adam's update is elementwise and ∂(Σ_m MSE_m)/∂θ_m =
∂MSE_m/∂θ_m, so every model follows exactly its own optimisation, as if trained alone by
`train_ffn` with its seed. Only the floating-point summation order of the matrix products
differs: one step's gradients agree to ~1e-7 relative, and small models stay within ~1e-7 over
hundreds of steps; but full-batch Adam on a ReLU MLP amplifies rounding differences, so paper-size
models drift apart over long runs (measured: |Δw| ≲ 1e-2, |ΔPSNR| ≲ 5e-3 dB after 200 steps at
64×128), as they would under any change of matrix kernel.

Models that share a seed share the Fourier matrix B and hence the features γ of the pixel grid:
their first layers run as one matrix product γ @ [W_1 … W_k]ᵀ (γ is read once, held once), the
later layers as batched products (`baddbmm`). The features are computed once: B is not trained.
On the CPU, each step's gradient is accumulated over pixel chunks so the activations of a group
stay in cache; on a GPU the whole image goes at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from xinc.models import FFN
from xinc.train.metrics import psnr_per_frame, quantize_8bit

# on the CPU, pixels per gradient chunk so that one hidden activation of the group holds about
# this many values (≈2 MB: the working set stays in cache); GPUs take the whole image at once
CPU_CHUNK_VALUES = 1 << 19


def pixel_chunk(device: torch.device, n_models: int, width: int, n_pixels: int) -> int:
    """Pixels per forward/backward chunk (a power of two ≥ 256, or the whole image)."""
    if device.type != "cpu":
        return n_pixels
    rows = max(CPU_CHUNK_VALUES // (n_models * width), 256)
    return min(1 << (rows.bit_length() - 1), n_pixels)


class StackedFFN:
    """M FFNs with stacked weights; members with equal seeds are adjacent and share γ."""

    def __init__(self, models: Sequence[FFN], seeds: Sequence[int], device: torch.device) -> None:
        self.layers = len(models[0].net)
        self.params: list[torch.Tensor] = []  # W_1, b_1, W_2, b_2, … stacked over models
        for i in range(self.layers):
            for name in ("weight", "bias"):
                stacked = torch.stack([getattr(m.net[i].linear, name).detach() for m in models])
                self.params.append(stacked.to(device).requires_grad_(True))
        self.B = torch.stack([m.positional_encoding.B for m in models]).to(device)
        # runs of adjacent members with the same seed: (start, stop) of each
        self.runs: list[tuple[int, int]] = []
        for m, seed in enumerate(seeds):
            if self.runs and seeds[self.runs[-1][0]] == seed:
                self.runs[-1] = (self.runs[-1][0], m + 1)
            else:
                self.runs.append((m, m + 1))
        self.features: list[torch.Tensor] = []

    def __len__(self) -> int:
        return self.B.shape[0]

    @torch.no_grad()
    def set_coords(self, coords: torch.Tensor) -> None:
        """Cache γ of every run (computed exactly as `FourierFeatures.forward`)."""
        self.features = []
        for start, _ in self.runs:
            proj = (2 * torch.pi * coords) @ self.B[start].T
            self.features.append(torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1))

    @property
    def n_pixels(self) -> int:
        return self.features[0].shape[0]

    def forward(self, rows: slice = slice(None)) -> torch.Tensor:
        """Outputs of all models at the cached coordinates `rows`, [M, P', 3]."""
        w1, b1 = self.params[0], self.params[1]
        n_out, n_in = w1.shape[1:]
        parts = []
        for (start, stop), gamma in zip(self.runs, self.features, strict=True):
            k = stop - start
            h = torch.addmm(
                b1[start:stop].reshape(k * n_out),
                gamma[rows],
                w1[start:stop].reshape(k * n_out, n_in).T,
            )
            parts.append(h.view(-1, k, n_out))
        x = (parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)).transpose(0, 1)
        for i in range(1, self.layers):
            x = torch.relu(x)
            w, b = self.params[2 * i], self.params[2 * i + 1]
            x = torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))
        return x

    def backward(self, target: torch.Tensor, chunk: int) -> torch.Tensor:
        """Accumulate ∂(Σ_m MSE_m)/∂params over pixel chunks; returns Σ_m MSE_m (detached).

        Chunking keeps the activations of all models small (cache-resident on a CPU); the
        gradient is the full-image one (each chunk's squared errors are divided by the full
        count, as the mean over the image does).
        """
        n = self.n_pixels * target.shape[-1]
        total = torch.zeros((), device=target.device)
        for a in range(0, self.n_pixels, chunk):
            rows = slice(a, a + chunk)
            loss = (self.forward(rows) - target[:, rows]).pow(2).sum() / n
            loss.backward()
            total += loss.detach()
        return total

    def state_dict(self, m: int, params: Sequence[torch.Tensor] | None = None) -> dict:
        """Model m as the state dict of a plain FFN (from `params`, default the current)."""
        params = self.params if params is None else params
        state = {"positional_encoding.B": self.B[m]}
        for i in range(self.layers):
            state[f"net.{i}.linear.weight"] = params[2 * i][m].detach()
            state[f"net.{i}.linear.bias"] = params[2 * i + 1][m].detach()
        return state


@torch.no_grad()
def evaluate_stacked(stacked: StackedFFN, target: torch.Tensor, chunk: int) -> torch.Tensor:
    """PSNR of every model (output clamped and rounded to 8-bit levels), float64 [M] on CPU."""
    pred = torch.cat(
        [
            quantize_8bit(stacked.forward(slice(a, a + chunk)))
            for a in range(0, stacked.n_pixels, chunk)
        ],
        dim=1,
    )
    scores = [
        psnr_per_frame(p.reshape(1, -1), t.reshape(1, -1))
        for p, t in zip(pred, target, strict=True)
    ]
    return torch.cat(scores).double().cpu()

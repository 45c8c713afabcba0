"""The fused CPU expansion of reference maps (`expand.c`), built with the system C compiler.

`reference.Pipeline` hands each chunk's pieces to `expand` first; it returns False (and the
Pipeline runs its torch ops instead) on CUDA, for other dtypes or activations, or when no
compiler is available. `XINC_NATIVE` chooses: `auto` (default: use it when it builds, warn
once otherwise), `off`, or `on` (a build failure is an error). The library is compiled once
per source, compiler and CPU into `$XINC_CACHE` (default `$XDG_CACHE_HOME/xinc`, else
`~/.cache/xinc`), written under a temporary name and renamed, so concurrent jobs never load a
partial file.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

SOURCE = Path(__file__).with_name("expand.c")
FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-fPIC", "-shared")
ACTS = {"none": 1, "tanh": 2}  # nn.GELU(approximate=…) → expand.c's ACT_GELU / ACT_GELU_TANH


class NativeBuildError(RuntimeError):
    """The C expansion could not be compiled or loaded."""


def setting() -> str:
    """`XINC_NATIVE`: auto, on or off (ValueError otherwise)."""
    value = os.environ.get("XINC_NATIVE", "auto").strip().lower()
    value = {"1": "on", "0": "off", "true": "on", "false": "off"}.get(value, value)
    if value not in ("auto", "on", "off"):
        raise ValueError(f"XINC_NATIVE={value!r}: expected auto, on or off")
    return value


def _compiler() -> str:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    raise NativeBuildError("no C compiler found (set CC, or install gcc)")


def compiler_found() -> bool:
    """Whether a C compiler is on PATH (or in CC) to build the expansion with."""
    try:
        _compiler()
    except NativeBuildError:
        return False
    return True


def _cpu_signature() -> str:
    """The CPU's feature flags (a `-march=native` build is only valid on the same kind)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return os.uname().machine


def _build(compiler: str, cache_dir: Path) -> Path:
    """The compiled library in `cache_dir`, built unless present."""
    key = hashlib.sha256(b"\0".join(
        [SOURCE.read_bytes(), compiler.encode(), " ".join(FLAGS).encode(),
         _cpu_signature().encode()])).hexdigest()[:16]
    target = cache_dir / f"expand-{key}.so"
    if target.exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=cache_dir, prefix=".expand-", suffix=".so")
    os.close(fd)
    try:
        result = subprocess.run([compiler, *FLAGS, "-o", partial, str(SOURCE)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise NativeBuildError(f"{compiler} failed on {SOURCE}:\n{result.stderr.strip()}")
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return target


def library() -> ctypes.CDLL | None:
    """The loaded expansion library, or None when `XINC_NATIVE` is off or (auto) it fails."""
    user_cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    cache_dir = os.environ.get("XINC_CACHE") or str(Path(user_cache) / "xinc")
    return _load(setting(), os.environ.get("CC"), cache_dir)


@cache
def _load(mode: str, cc: str | None, cache_dir: str) -> ctypes.CDLL | None:
    """`library()` for one setting, `CC` and cache directory (the arguments key the cache)."""
    if mode == "off":
        return None
    try:
        lib = ctypes.CDLL(str(_build(_compiler(), Path(cache_dir))))
    except (NativeBuildError, OSError) as err:
        if mode == "on":
            raise NativeBuildError(f"XINC_NATIVE=on but the C expansion is unavailable: "
                                   f"{err}") from err
        warnings.warn(f"xinc: using the slower torch expansion ({err}); set XINC_NATIVE=off "
                      "to silence this", RuntimeWarning, stacklevel=4)
        return None
    p, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    lib.xinc_expand.argtypes = [p, i64, i64, i32, i32, p, i64, i32, p, p, p, p, i32, i32, p]
    lib.xinc_expand.restype = ctypes.c_int
    return lib


def _act_code(act: nn.Module) -> int | None:
    if isinstance(act, nn.GELU):
        return ACTS.get(act.approximate)
    return 0 if isinstance(act, nn.Identity) else None


class Tables:
    """expand.c's stage tables of a `reference.Stage` list: geom {r, pad, act, placed}, 1/k²,
    and the `tap_counts(r, k, phase)` of every stage, selector and output phase."""

    def __init__(self, stages: list, tap_counts: Callable[..., tuple]) -> None:
        rows = {(s, sel, q): row for s, st in enumerate(stages)
                for sel in range(st.r if st.placed else 1)
                for q, row in enumerate(tap_counts(st.r, st.k, sel if st.placed else None))}
        acts = [_act_code(st.act) if s else 0 for s, st in enumerate(stages)]
        self.supported = None not in acts
        self.rmax = max(st.r for st in stages)
        self.tmax = max(1, max(len(row) for row in rows.values()))
        self.geom = np.array([[st.r, st.pad, a or 0, st.placed] for st, a in zip(
            stages, acts, strict=True)], dtype=np.int32)
        self.scale = np.array([1.0 / st.k**2 for st in stages], dtype=np.float32)
        self.taps = np.zeros((len(stages), self.rmax, self.rmax, self.tmax, 2), dtype=np.int32)
        self.ntaps = np.zeros((len(stages), self.rmax, self.rmax), dtype=np.int32)
        for (s, sel, q), row in rows.items():
            self.ntaps[s, sel, q] = len(row)
            if row:
                self.taps[s, sel, q, :len(row)] = row


@cache
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(workers, thread_name_prefix="xinc-expand")


def expand(pieces: torch.Tensor, ids: torch.Tensor, tables: Tables, out: torch.Tensor) -> bool:
    """Write the maps of neurons `ids` into `out` [n, H, W] from their pieces [n, h, w + 2·pad]
    (GELU(P)/k², zero-bordered along the width); False (nothing written) where unsupported."""
    if not (tables.supported and pieces.device.type == "cpu" and out.device.type == "cpu"
            and pieces.dtype == out.dtype == torch.float32 and pieces.stride(2) == 1
            and out.is_contiguous() and len(ids) == len(pieces) == len(out)):
        return False
    lib = library()
    if lib is None:
        return False
    ids = ids.to(torch.int64).contiguous()
    n, h0, w0 = len(ids), pieces.shape[1], pieces.shape[2] - 2 * int(tables.geom[0, 1])
    grow = int(np.prod(tables.geom[:, 0]))
    if tuple(out.shape[1:]) != (h0 * grow, w0 * grow):
        raise ValueError(f"out has maps of {list(out.shape[1:])}; the stages make "
                         f"{[h0 * grow, w0 * grow]}")
    if n == 0:
        return True
    parts = np.array_split(np.arange(n), min(n, torch.get_num_threads()))

    def run(part: np.ndarray) -> int:
        if not len(part):
            return 0
        start = int(part[0])
        return lib.xinc_expand(
            pieces[start].data_ptr(), pieces.stride(0), pieces.stride(1), h0, w0,
            ids[start].data_ptr(), len(part), len(tables.geom), tables.geom.ctypes.data,
            tables.scale.ctypes.data, tables.taps.ctypes.data, tables.ntaps.ctypes.data,
            tables.rmax, tables.tmax, out[start].data_ptr())

    status = list(_pool(len(parts)).map(run, parts))
    if any(status):
        raise RuntimeError(f"xinc_expand failed for {n} neurons (out of memory?)")
    return True

"""xinc's C kernels (`*.c` beside this file), built with the system C compiler at first use.

The kernels fuse passes that torch or numpy would make over memory one op at a time: the
expansion of NeRV reference maps (`expand.c`, used by `xinc.canvas.nerv.fused`) and the
histograms of the frame statistics (`hist.c`, used by `xinc.stats`). Each caller keeps its
torch/numpy code as the CUDA path and the fallback, and the tests hold both to the same
values.

`XINC_NATIVE` chooses: `auto` (default: use the kernels when they build, warn once
otherwise), `off`, or `on` (a build failure is an error). The library is compiled once per
source, compiler and CPU into `$XINC_CACHE` (default `$XDG_CACHE_HOME/xinc`, else
`~/.cache/xinc`; a per-user folder in the temporary directory where that cannot be written),
written under a temporary name and renamed, so concurrent jobs never load a partial file.
Kernels run single-threaded; `split_map` runs them on contiguous parts on
`torch.get_num_threads()` threads (ctypes releases the GIL).
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
from typing import TypeVar

import torch

SOURCES = tuple(sorted(Path(__file__).parent.glob("*.c")))
FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-fPIC", "-shared")
_P, _I64, _I32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
SIGNATURES = {  # function: (argument types, result type)
    "xinc_expand": ([_P, _I64, _I64, _I32, _I32, _P, _I64, _I32, _P, _P, _P, _P, _I32, _I32,
                     _P], ctypes.c_int),
    "xinc_coarse_hist": ([_P, _I64, _P, _P], _I64),
    "xinc_tau_scan": ([_P, _I64, _I64, _I32, _P, _P, _P, _I64], _I64),
}
T = TypeVar("T")


class NativeBuildError(RuntimeError):
    """The C kernels could not be compiled or loaded."""


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
    """Whether a C compiler is on PATH (or in CC) to build the kernels with."""
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


def _build(compiler: str, cache: Path) -> Path:
    """The compiled library in `cache` (or, if that cannot be written, a per-user folder in
    the temporary directory), built unless present."""
    key = hashlib.sha256(b"\0".join(
        [*(src.read_bytes() for src in SOURCES), compiler.encode(), " ".join(FLAGS).encode(),
         _cpu_signature().encode()])).hexdigest()[:16]
    user = os.getuid() if hasattr(os, "getuid") else "user"
    for folder in (cache, Path(tempfile.gettempdir()) / f"xinc-{user}"):
        target = folder / f"xinc-{key}.so"
        if target.exists():
            return target
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, partial = tempfile.mkstemp(dir=folder, prefix=".xinc-", suffix=".so")
        except OSError:
            continue
        os.close(fd)
        try:
            result = subprocess.run([compiler, *FLAGS, "-o", partial, *map(str, SOURCES)],
                                    capture_output=True, text=True)
            if result.returncode != 0:
                raise NativeBuildError(f"{compiler} failed on "
                                       f"{', '.join(map(str, SOURCES))}:\n"
                                       f"{result.stderr.strip()}")
            os.replace(partial, target)
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
        return target
    raise NativeBuildError(f"cannot write {cache} (set XINC_CACHE to a writable folder)")


def cache_dir() -> Path:
    """Where the built library goes: `$XINC_CACHE`, else `$XDG_CACHE_HOME/xinc`, else
    `~/.cache/xinc`."""
    user_cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(os.environ.get("XINC_CACHE") or Path(user_cache) / "xinc")


def build() -> Path:
    """The compiled library (built now unless cached); NativeBuildError with the compiler's
    message when it cannot be built."""
    return _build(_compiler(), cache_dir())


def library() -> ctypes.CDLL | None:
    """The loaded kernels, or None when `XINC_NATIVE` is off or (auto) they fail to build."""
    return _load(setting(), os.environ.get("CC"), str(cache_dir()))


@cache
def _load(mode: str, cc: str | None, cache: str) -> ctypes.CDLL | None:
    """`library()` for one setting, `CC` and cache directory (the arguments key the cache)."""
    if mode == "off":
        return None
    try:
        lib = ctypes.CDLL(str(_build(_compiler(), Path(cache))))
    except (NativeBuildError, OSError) as err:
        if mode == "on":
            raise NativeBuildError(f"XINC_NATIVE=on but the C kernels are unavailable: "
                                   f"{err}") from err
        warnings.warn(f"xinc: using the slower torch/numpy code instead of the C kernels "
                      f"({err}); set XINC_NATIVE=off to silence this", RuntimeWarning,
                      stacklevel=4)
        return None
    for name, (args, result) in SIGNATURES.items():
        getattr(lib, name).argtypes = args
        getattr(lib, name).restype = result
    return lib


@cache
def _pool(workers: int, pid: int) -> ThreadPoolExecutor:
    """A pool of `workers` threads for process `pid` (a forked child makes its own: the
    parent's threads do not exist there, and its pool would never run the work)."""
    return ThreadPoolExecutor(workers, thread_name_prefix="xinc-native")


def split_map(fn: Callable[[int, int], T], n: int, min_part: int = 1) -> list[T]:
    """[fn(start, stop)] over contiguous ranges covering 0 … n − 1 in order, one per torch
    thread but at least `min_part` items each (sizes as `np.array_split`), run on a shared
    pool: the ranges run concurrently where fn releases the GIL (C kernels, numpy loops)."""
    parts = max(1, min(torch.get_num_threads(), n // max(1, min_part)))
    size, extra = divmod(n, parts)
    bounds = [0]
    for i in range(parts):
        bounds.append(bounds[-1] + size + (i < extra))
    if parts == 1:
        return [fn(0, n)]
    return list(_pool(parts, os.getpid()).map(fn, bounds[:-1], bounds[1:]))

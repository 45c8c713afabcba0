"""An independent reader of the explorer's data files (docs/formats.md §11), written from the
format's text rather than from xinc.explorer.encode, for the tests that check them."""

from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path

import numpy as np


def read_js(path: Path) -> tuple[str, dict]:
    """(key, data) of an `XINC.add(key, data);` file."""
    text = path.read_text()
    assert text.startswith("XINC.add(") and text.endswith(");\n"), path
    key, data = json.loads("[" + text[len("XINC.add("):-3] + "]")
    return key, data


def unpack(packed: dict) -> np.ndarray:
    """A packed array: inflate, undo the byte planes, reshape."""
    dtype = np.dtype(packed["dtype"]).newbyteorder("<")
    raw = np.frombuffer(zlib.decompress(base64.b64decode(packed["data"])), np.uint8)
    if packed["planes"]:
        raw = raw.reshape(dtype.itemsize, -1).T.copy()
    return np.frombuffer(raw.tobytes(), dtype).reshape(packed["shape"])

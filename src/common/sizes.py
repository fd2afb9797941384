"""Sizes as people write them (``1GiB``, ``500MB``, ``255MiB``): ``finemon run --size-limit``
and the bounds of ``finemon check`` read them with :func:`parse_size`. Imports nothing."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*$")
_UNITS: Mapping[str, int] = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
    "ti": 1024**4,
    "tib": 1024**4,
}


def parse_size(text: str, *, minimum: int = 1) -> int:
    """Bytes in ``text``: a number with an optional unit, e.g. ``1GiB``, ``500MB``, ``2G``, ``123``.

    ``K``/``KB``, ``M``/``MB``, ``G``/``GB``, ``T``/``TB`` are powers of 1000 (as in Kubernetes
    quantities); ``Ki``/``KiB`` ... ``Ti``/``TiB`` powers of 1024; case is ignored; a fraction
    of a byte is dropped. Raises ValueError (one line) for anything else or a size under
    ``minimum`` bytes.
    """
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise ValueError(
            f"invalid size {text!r}: use a number with an optional unit "
            "(B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. 1GiB or 500MB"
        )
    size = math.floor(float(match.group(1)) * _UNITS[unit])
    if size < minimum:
        unit_text = "one byte" if minimum == 1 else f"{minimum} bytes"
        raise ValueError(f"invalid size {text!r}: must be at least {unit_text}")
    return size

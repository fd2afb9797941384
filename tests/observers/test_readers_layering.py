"""observers.readers stays a leaf: it imports neither the capture library nor the samplers."""

from __future__ import annotations

import json
import subprocess
import sys

READER_MODULES = (
    "observers.readers",
    "observers.readers.cgroup_v1",
    "observers.readers.cgroup_v2",
    "observers.readers.errors",
    "observers.readers.keyed",
    "observers.readers.limits",
    "observers.readers.mountinfo",
    "observers.readers.numbers",
    "observers.readers.procfs",
)


def test_readers_import_no_capture_and_no_sampler() -> None:
    # A fresh interpreter, so that no module another test imported is counted.
    script = (
        "import importlib, json, sys\n"
        f"for name in {READER_MODULES!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True
    ).stdout
    loaded = json.loads(out)
    ours = [m for m in loaded if m.split(".")[0] in ("capture", "monitor", "observers")]
    assert set(READER_MODULES) <= set(ours)
    # The observers package itself (its __init__ is a docstring) and the readers, nothing else.
    assert set(ours) - set(READER_MODULES) == {"observers"}, ours

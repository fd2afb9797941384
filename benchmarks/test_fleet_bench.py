"""The fleet benchmark's smoke run: ``benchmarks/fleet.py --quick`` end to end (2 nodes x 2 h x
20 containers), every measure taken and the answers equal on raw, compacted and S3.

Not in the default test run (``testpaths`` is ``tests``); run by hand, under the lock::

    flock /tmp/finemon-bench.lock env PYTHONPATH=src \
        python -m pytest -q benchmarks/test_fleet_bench.py
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.s3_server import MISSING

pytestmark = pytest.mark.slow


def test_the_quick_fleet_runs_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("uvicorn", reason="finemon view needs the view extra")
    pytest.importorskip("pyiceberg", reason="the Iceberg plan needs the iceberg extra")
    if MISSING:
        pytest.skip(MISSING)
    from benchmarks.fleet import main

    assert main(["--quick", "--data", str(tmp_path / "fleet")]) == 0
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    raw, compacted = result["results"]["raw"], result["results"]["compacted"]
    assert result["fleet"]["files"] == raw["files"] == 160
    assert compacted["files"] == 2
    for which in (raw, compacted):
        assert which["s3"]["objects_fetched"] >= 1
        assert 1 <= which["iceberg"]["planned"] <= which["iceberg"]["files"]
    assert "view: first chart's data" in out and "iceberg: files planned" in out
    # Run again: the fleet and its compaction are reused, not written again.
    assert main(["--quick", "--data", str(tmp_path / "fleet"), "--no-s3", "--no-iceberg"]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["fleet"] == result["fleet"] and again["compaction"] == result["compaction"]

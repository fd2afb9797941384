"""``finemon run --upload``: the real finemon and uploader processes against a real S3 HTTP server
(moto in server mode on localhost), including a store that is down, killed mid-upload, and the
size limit freed by ``--upload-delete``."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from finemon_process import (
    FAST,
    Finemon,
    finemon_env,
    hidden_leftovers,
    manifest,
    parquet_files,
    run_cli,
    wait_for,
)
from tests.s3_server import MotoServer, free_port, running_server, use_fake_aws

from monitor.upload import STATUS_FILE

BUCKET = "fleet"
PREFIX = "clusters/test"
URL = f"s3://{BUCKET}/{PREFIX}"


@pytest.fixture
def s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    yield from running_server(tmp_path, monkeypatch)


def upload_flags(endpoint: str, *extra: str) -> tuple[str, ...]:
    return ("--upload", URL, "--upload-endpoint", endpoint, "--upload-interval", "0.3", *extra)


def expected_objects(out: Path) -> dict[str, bytes]:
    """What the bucket must hold for ``out``: every data file and run manifest, same bytes."""
    files = parquet_files(out) + sorted((out / "_sessions").glob("*.json"))
    return {f"{PREFIX}/{p.relative_to(out).as_posix()}": p.read_bytes() for p in files}


def status(out: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads((out / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data


def uploader_pids(log: str) -> list[int]:
    return [int(pid) for pid in re.findall(r"uploader started pid=(\d+)", log)]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (not yet reaped) is gone as far as uploading goes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def uploader(out: Path, endpoint: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "monitor.upload",
        "--output-dir",
        str(out),
        "--to",
        URL,
        "--endpoint",
        endpoint,
        *extra,
    ]


# ---------------------------------------------------------------------- the real run
def test_a_run_is_uploaded_with_the_same_layout_and_bytes(tmp_path: Path, s3: MotoServer) -> None:
    out = tmp_path / "out"
    proc = Finemon(out, *FAST, "--duration", "4", *upload_flags(s3.endpoint))
    assert proc.wait(30) == 0, proc.log
    log = proc.log
    assert len(uploader_pids(log)) == 1, log
    assert "last pass" in log
    expected = expected_objects(out)
    run_id = manifest(out)["run_id"]
    assert f"{PREFIX}/_sessions/{run_id}.json" in expected
    assert sum(k.endswith(".parquet") for k in expected) >= 2  # rotated at least once
    stored = s3.objects(BUCKET)
    # Exactly the local files: no _session.json, no hidden file, no status file.
    assert stored.keys() == expected.keys()
    for key, data in expected.items():
        assert stored[key] == data, key
    # The manifest that went up last is the final one (end_time set after the drain).
    assert json.loads(stored[f"{PREFIX}/_sessions/{run_id}.json"])["end_time"]
    for key in stored:
        assert re.fullmatch(
            rf"{PREFIX}/(dt=\d{{4}}-\d\d-\d\d/identifier=test-node/finemon-[^/]+\.parquet"
            rf"|_sessions/{run_id}\.json)",
            key,
        ), key
    # Nothing deleted without --upload-delete; the status file counts what went up.
    assert parquet_files(out)
    counters = status(out)["counters"]
    assert counters["pending_files"] == 0
    assert counters["failures"] == 0
    head = s3.client().head_object(Bucket=BUCKET, Key=next(iter(expected)))
    assert head["Metadata"]["finemon-md5"]

    # A restart of the uploader finds everything present: nothing is uploaded again.
    modified = {
        item["Key"]: item["LastModified"]
        for item in s3.client().list_objects_v2(Bucket=BUCKET)["Contents"]
    }
    done = subprocess.run(
        uploader(out, s3.endpoint, "--once"),
        env=finemon_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    again = status(out)["counters"]
    assert again["uploaded_files"] == 0
    assert again["already_present"] == len(expected)
    after = {
        item["Key"]: item["LastModified"]
        for item in s3.client().list_objects_v2(Bucket=BUCKET)["Contents"]
    }
    assert after == modified


def test_store_unreachable_at_first_then_everything_goes_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_fake_aws(monkeypatch)
    out = tmp_path / "out"
    server = MotoServer(tmp_path / "moto.log")  # its port has no server yet
    proc = Finemon(out, *FAST, *upload_flags(server.endpoint, "--upload-delete"))
    try:
        wait_for(lambda: len(parquet_files(out)) >= 2, 20, "two published files")
        proc.wait_log("upload failing")
        time.sleep(2.0)
        # Files stay local while the store is down, and one line tells of the streak.
        assert len(parquet_files(out)) >= 2
        assert proc.log.count("upload failing") == 1, proc.log
        assert status(out)["counters"]["failures"] >= 2
        server.start()
        server.create_bucket(BUCKET)
        proc.wait_log("upload recovered", timeout=90)
        wait_for(lambda: status(out)["counters"]["deleted_files"] >= 2, 30, "deletions")
        proc.signal(signal.SIGTERM)
        assert proc.wait(60) == 0, proc.log
        log = proc.log
        assert log.count("upload recovered") == 1, log
        stored = server.objects(BUCKET)
        data_keys = [k for k in stored if k.endswith(".parquet")]
        # --upload-delete: every data file went up, was verified and removed locally.
        assert not parquet_files(out), status(out)
        assert len(data_keys) == status(out)["counters"]["deleted_files"]
        assert len(data_keys) == len(set(re.findall(r"uploaded key=(\S+\.parquet)", log)))
        # The manifests stay local (small), and the store has their last version.
        for path in (out / "_sessions").glob("*.json"):
            assert stored[f"{PREFIX}/_sessions/{path.name}"] == path.read_bytes()
        assert not hidden_leftovers(out)
    finally:
        proc.kill()
        server.kill()


def test_server_killed_mid_multipart_upload(tmp_path: Path, s3: MotoServer) -> None:
    out = tmp_path / "out"
    part = tmp_path / "out" / "dt=2026-01-01" / "identifier=node-a"
    part.mkdir(parents=True)
    big = part / "finemon-20260101T000000Z-aaaaaaaa-00001.parquet"
    big.write_bytes(os.urandom(60 * 1024 * 1024))  # 12 parts of 5 MiB
    small = part / "finemon-20260101T000130Z-aaaaaaaa-00002.parquet"
    small.write_bytes(os.urandom(100_000))
    (out / "_sessions").mkdir()
    (out / "_sessions" / "aaaaaaaa.json").write_text('{"run_id": "aaaaaaaa"}\n')
    log_path = tmp_path / "uploader.log"
    with open(log_path, "wb") as log:
        child = subprocess.Popen(
            uploader(
                out,
                s3.endpoint,
                "--part-size",
                str(5 * 1024 * 1024),
                "--interval",
                "0.3",
                "--log-level",
                "DEBUG",
            ),
            env=finemon_env(),
            stderr=log,
        )
    try:
        wait_for(lambda: "part 2/12 uploaded" in log_path.read_text(), 60, "a part uploaded")
        s3.kill()  # mid-upload of the big file
        assert "finemon-20260101T000000Z" not in "".join(
            re.findall(r"uploaded key=\S+", log_path.read_text())
        ), "the big file was done before the kill: the test proves nothing"
        wait_for(lambda: "upload failing" in log_path.read_text(), 30, "the failure")
        assert child.poll() is None, log_path.read_text()
        s3.start()
        s3.create_bucket(BUCKET)  # moto's restart is empty, as a store that lost everything
        wait_for(lambda: "upload recovered" in log_path.read_text(), 90, "the recovery")
        wait_for(lambda: status(out).get("counters", {}).get("pending_files") == 0, 30, "done")
        child.send_signal(signal.SIGTERM)
        assert child.wait(30) == 0, log_path.read_text()
    finally:
        if child.poll() is None:
            child.kill()
    text = log_path.read_text()
    assert text.count("upload failing") == 1, text
    stored = s3.objects(BUCKET)
    assert stored == expected_objects(out)
    # Nothing half-done is left in the store.
    assert s3.client().list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_upload_delete_keeps_what_the_store_does_not_verifiably_hold(
    tmp_path: Path, s3: MotoServer
) -> None:
    from monitor.objectstore import LocalDigest, ObjectStore, S3Location, StoreError
    from monitor.upload import Uploader

    out = tmp_path / "out"
    part = out / "dt=2026-01-01" / "identifier=n"
    part.mkdir(parents=True)
    files = [part / f"finemon-x-{i:05d}.parquet" for i in range(3)]
    for i, path in enumerate(files):
        path.write_bytes(os.urandom(1000 + i))
    location = S3Location(BUCKET, PREFIX)

    class Corrupting(ObjectStore):
        """Stores other bytes than the file's (a store that lies): verification must fail."""

        def put(self, f: Any, key: str, local: LocalDigest) -> None:
            self.client.put_object(Bucket=BUCKET, Key=key, Body=b"not the file")

    from monitor.objectstore import StoreSettings

    settings = StoreSettings(endpoint_url=s3.endpoint)
    with pytest.raises(StoreError, match="differs"):
        Uploader(out, Corrupting(location, settings), delete=True).run_pass()
    assert all(path.exists() for path in files)

    # A store that is down: nothing deleted either.
    down = ObjectStore(location, StoreSettings(endpoint_url=f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(StoreError):
        Uploader(out, down, delete=True).run_pass()
    assert all(path.exists() for path in files)

    contents = {p.name: p.read_bytes() for p in files}
    uploader_ = Uploader(out, ObjectStore(location, settings), delete=True)
    assert uploader_.run_pass()
    assert not any(path.exists() for path in files)
    stored = s3.objects(BUCKET)
    for name, data in contents.items():
        assert stored[f"{PREFIX}/dt=2026-01-01/identifier=n/{name}"] == data
    assert uploader_.counters.deleted_files == 3
    assert uploader_.counters.uploaded_files == 3


def test_size_limit_resumes_when_uploads_free_space(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_fake_aws(monkeypatch)
    out = tmp_path / "out"
    server = MotoServer(tmp_path / "moto.log")  # down until the limit is reached
    limit = 25_000
    proc = Finemon(
        out, *FAST, "--size-limit", str(limit), *upload_flags(server.endpoint, "--upload-delete")
    )
    try:
        wait_for(
            lambda: (
                (out / "_session.json").exists() and manifest(out).get("reason") == "size_limit"
            ),
            30,
            "the size limit",
        )
        first = manifest(out)
        stopped_files = set(parquet_files(out))
        assert stopped_files
        time.sleep(1.0)
        assert set(parquet_files(out)) == stopped_files  # idle: nothing new
        server.start()
        server.create_bucket(BUCKET)
        proc.wait_log("recording again as a new run", timeout=90)
        wait_for(lambda: manifest(out)["run_id"] != first["run_id"], 10, "a new run")
        second = manifest(out)
        # New files appear again, from the new run.
        wait_for(
            lambda: (
                any(second["run_id"][:8] in p.name for p in parquet_files(out))
                or status(out).get("counters", {}).get("deleted_files", 0) > len(stopped_files)
            ),
            30,
            "new files",
        )
        proc.signal(signal.SIGTERM)
        assert proc.wait(60) == 0, proc.log
        stored = server.objects(BUCKET)
    finally:
        proc.kill()
        server.kill()
    earlier = manifest(out, first["run_id"])
    assert earlier["reason"] == "size_limit"
    assert earlier["exit_reason"] == "space_freed"
    runs = {json.loads(stored[k])["run_id"] for k in stored if "/_sessions/" in k}
    assert runs == {first["run_id"], second["run_id"]}
    second_keys = [k for k in stored if k.endswith(".parquet") and second["run_id"][:8] in k]
    assert second_keys, sorted(stored)
    assert proc.log.count("size limit reached:") >= 1
    assert proc.log.count("idle reason=size_limit:") >= 1


def test_the_uploader_is_restarted_when_it_dies(tmp_path: Path, s3: MotoServer) -> None:
    out = tmp_path / "out"
    proc = Finemon(out, *FAST, *upload_flags(s3.endpoint))
    try:
        proc.wait_log("uploader started")
        (first,) = uploader_pids(proc.log)
        wait_for(lambda: status(out).get("counters", {}).get("uploaded_files", 0) >= 1, 30, "up")
        os.kill(first, signal.SIGKILL)
        proc.wait_log("uploader exited code=-9")
        wait_for(lambda: len(uploader_pids(proc.log)) == 2, 20, "a second uploader")
        assert proc.alive()
        time.sleep(2.5)
        proc.signal(signal.SIGTERM)
        assert proc.wait(60) == 0, proc.log
    finally:
        proc.kill()
    assert s3.objects(BUCKET) == expected_objects(out)
    for pid in uploader_pids(proc.log):
        assert not alive(pid)


def test_files_recovered_after_sigkill_are_uploaded(tmp_path: Path, s3: MotoServer) -> None:
    out = tmp_path / "out"
    # A finemon with an uploader, killed: the uploader sees its parent gone and leaves.
    killed = Finemon(out, *FAST, "--upload-final-seconds", "2", *upload_flags(s3.endpoint))
    killed.wait_log("uploader started")
    (child,) = uploader_pids(killed.log)
    wait_for(lambda: len(hidden_leftovers(out)) >= 1 and parquet_files(out), 20, "data")
    time.sleep(0.5)
    killed.kill()
    wait_for(lambda: not alive(child), 20, "the orphaned uploader to exit")
    assert hidden_leftovers(out), "no journal left to recover"
    # The next start recovers the journal into a published file, which goes up like any other.
    again = Finemon(out, *FAST, "--duration", "2", *upload_flags(s3.endpoint))
    assert again.wait(30) == 0, again.log
    assert "recovered file=" in again.log
    recovered = re.findall(r"recovered file=(\S+)", again.log)
    stored = s3.objects(BUCKET)
    for path in recovered:
        key = f"{PREFIX}/{Path(path).relative_to(out).as_posix()}"
        assert stored[key] == Path(path).read_bytes()
    assert stored == expected_objects(out)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--upload-delete",), "--upload-delete needs --upload"),
        (("--upload", "s3://"), "not a bucket name"),
        (("--upload", "http://bucket/x"), "expected s3://BUCKET"),
        (("--upload", "s3://b-1/x", "--upload-endpoint", "minio:9000"), "expected http://"),
    ],
)
def test_bad_upload_flags_are_usage_errors(
    tmp_path: Path, flags: tuple[str, ...], message: str
) -> None:
    done = run_cli("run", "--output-dir", str(tmp_path / "out"), *flags)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert not (tmp_path / "out").exists()

"""The real ``finemon run`` process's live endpoint: /healthz follows the ticks, /metrics
serves the series set asked for."""

from __future__ import annotations

import signal
import urllib.error
import urllib.request
from pathlib import Path

from finemon_process import FAST, Finemon, free_port, wait_for
from prometheus_client.parser import text_string_to_metric_families


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def names(text: str) -> set[str]:
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


def endpoint(
    tmp_path: Path, *args: str, observer: str = "fake_observer:make"
) -> tuple[Finemon, str]:
    port = free_port()
    proc = Finemon(
        tmp_path / "out",
        *FAST,
        "--log-root",
        str(tmp_path),
        "--prometheus-port",
        str(port),
        "--prometheus-address",
        "127.0.0.1",
        *args,
        observer=observer,
    )
    return proc, f"http://127.0.0.1:{port}"


def test_healthz_is_503_while_the_sampler_is_stuck_and_200_once_ticks_come_again(
    tmp_path: Path,
) -> None:
    proc, url = endpoint(tmp_path, observer="fake_observer:make_stalling")
    try:
        proc.wait_log("recording run_id=")
        wait_for(lambda: get(f"{url}/healthz")[0] == 200, 5, "a healthy /healthz")
        status, body = get(f"{url}/healthz")
        assert body.startswith("ok: last tick ")
        (tmp_path / "stall").touch()  # the next sample hangs: no tick is taken
        wait_for(lambda: get(f"{url}/healthz")[0] == 503, 5, "an unhealthy /healthz")
        status, body = get(f"{url}/healthz")
        assert status == 503 and body.startswith("unhealthy: stale: last tick "), body
        assert "(limit 0.3 s)" in body  # 3 intervals of 0.1 s
        # /metrics still answers, with the last tick's values.
        status, metrics = get(f"{url}/metrics")
        assert status == 200 and "finemon_self_rss_bytes" in names(metrics)
        (tmp_path / "stall").unlink()
        wait_for(lambda: get(f"{url}/healthz")[0] == 200, 5, "/healthz healthy again")
        proc.signal(signal.SIGTERM)
        assert proc.wait(20) == 0, proc.log
    finally:
        (tmp_path / "stall").unlink(missing_ok=True)
        proc.kill()


def test_healthz_is_200_while_idle_at_the_size_limit(tmp_path: Path) -> None:
    """Idling at the size limit is on purpose: a liveness probe must not restart the pod."""
    proc, url = endpoint(tmp_path, "--size-limit", "20000")
    try:
        proc.wait_log("not recording", timeout=20)
        status, body = get(f"{url}/healthz")
        assert (status, body) == (200, "ok: idle reason=size_limit: not recording on purpose\n")
        assert "finemon_size_limit_reached" in names(get(f"{url}/metrics")[1])
        proc.signal(signal.SIGTERM)
        assert proc.wait(20) == 0, proc.log
    finally:
        proc.kill()


def test_the_default_series_set_leaves_out_what_it_does_not_list(tmp_path: Path) -> None:
    """The fake observer's metrics are not in the catalogue's default set; finemon's own are."""
    proc, url = endpoint(tmp_path)
    try:
        proc.wait_log("recording run_id=")
        wait_for(lambda: "finemon_containers" in names(get(f"{url}/metrics")[1]), 5, "a tick")
        served = names(get(f"{url}/metrics")[1])
        assert {"finemon_self_rss_bytes", "finemon_ticks_skipped_total"} <= served
        assert not any(name.startswith("fake_") for name in served), served
        assert "series=default" in proc.log
    finally:
        proc.kill()
    proc, url = endpoint(tmp_path, "--prometheus-series", "all")
    try:
        proc.wait_log("recording run_id=")
        wait_for(lambda: "finemon_self_rss_bytes" in names(get(f"{url}/metrics")[1]), 5, "a tick")
        assert {"fake_samples_total", "fake_cpu_millicores"} <= names(get(f"{url}/metrics")[1])
    finally:
        proc.kill()

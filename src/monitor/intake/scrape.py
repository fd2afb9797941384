"""``--target-metrics``: the watched process's own telemetry endpoints, scraped into the capture.

Two formats, told apart by the answer's ``Content-Type`` (JSON, else text):

- Prometheus or OpenMetrics text (the Datadog Agent's ``:5000/telemetry``), parsed with
  ``prometheus_client``'s parsers: every sample becomes the gauge ``target.<sample name>``
  with the sample's labels (``_created`` samples, which are timestamps, are left out);
- Go expvar JSON (``/debug/vars``): every numeric leaf becomes the gauge
  ``target.<dotted path>`` (``memstats.HeapAlloc``; list items by index), booleans and
  strings are left out.

Each sample also carries the label ``endpoint`` (the URL), and a label key that is a column of
the files other than a container's becomes ``label.<key>``. Values are written through
:mod:`capture.historical` at the time the scrape began, so they land in the scrape's tick
whenever the answer arrives. Each endpoint is scraped in a thread of its own, with a timeout
of 80 % of the interval (at most 10 s): a slow or failing endpoint never delays a tick nor the
other endpoints. A failed scrape (no answer, an HTTP error, a body that does not parse, more
than ``MAX_SAMPLES`` samples) is counted in ``finemon.target_metrics.errors{endpoint,reason}``,
logged at most once a minute, and the endpoint's series stop (no rows) until a scrape works
again.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Final

import capture
from monitor.intake.decode import CHECKPOINT_SERIES
from monitor.intake.flags import SCRAPE_TIMEOUT_SHARE, TargetMetricsConfig
from monitor.intake.quiet import SampleWindow
from monitor.intake.record import RESERVED_KEYS, TARGET_PREFIX

log = logging.getLogger("finemon.intake")

#: Most samples taken from one answer; a larger answer fails the scrape (reason too_large).
MAX_SAMPLES: Final = 20_000
#: Largest answer read, in bytes.
MAX_BODY_BYTES: Final = 16 * 1024 * 1024
#: Longest timeout of one scrape.
MAX_TIMEOUT_SECONDS: Final = 10.0
LOG_EVERY_SECONDS: Final = 60.0

SCRAPES: Final = "finemon.target_metrics.scrapes"
ERRORS: Final = "finemon.target_metrics.errors"
DURATION: Final = "finemon.target_metrics.duration_seconds"
SAMPLES: Final = "finemon.target_metrics.samples"

Sample = tuple[str, dict[str, str], float]


class ScrapeError(Exception):
    """A scrape that failed; ``reason`` is its counter label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _labels(raw: Mapping[str, str], endpoint: str) -> dict[str, str]:
    labels = {(f"label.{k}" if k in RESERVED_KEYS else k): v for k, v in raw.items()}
    labels["endpoint"] = endpoint
    return labels


def parse_prometheus_text(text: str, endpoint: str, openmetrics: bool) -> list[Sample]:
    """The samples of a Prometheus (or OpenMetrics) text exposition as (name, labels, value).
    Raises ScrapeError(``malformed``) when it does not parse, (``too_large``) past
    MAX_SAMPLES."""
    if openmetrics:
        from prometheus_client.openmetrics.parser import (  # noqa: PLC0415
            text_string_to_metric_families,
        )
    else:
        from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415
    samples: list[Sample] = []
    try:
        for family in text_string_to_metric_families(text):  # type: ignore[no-untyped-call]
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                samples.append((sample.name, _labels(sample.labels, endpoint), sample.value))
                if len(samples) > MAX_SAMPLES:
                    raise ScrapeError("too_large", f"more than {MAX_SAMPLES} samples")
    except (ValueError, TypeError, IndexError) as exc:
        raise ScrapeError("malformed", f"not Prometheus text: {exc}") from None
    return samples


def _leaves(value: object, path: str, depth: int) -> Iterator[tuple[str, float]]:
    if isinstance(value, bool) or depth > 16:
        return
    if isinstance(value, int | float):
        yield path, float(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}" if path else str(key), depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, f"{path}.{index}" if path else str(index), depth + 1)


def parse_expvar(data: bytes, endpoint: str) -> list[Sample]:
    """The numeric leaves of a Go expvar JSON document as (dotted name, labels, value).
    Raises ScrapeError(``malformed``) for a body that is no JSON object, (``too_large``)
    past MAX_SAMPLES."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ScrapeError("malformed", f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ScrapeError("malformed", "not a JSON object")
    labels = {"endpoint": endpoint}
    samples: list[Sample] = []
    for name, value in _leaves(document, "", 0):
        samples.append((name, labels, value))
        if len(samples) > MAX_SAMPLES:
            raise ScrapeError("too_large", f"more than {MAX_SAMPLES} numeric leaves")
    return samples


def fetch(url: str, timeout_seconds: float) -> list[Sample]:
    """Scrape ``url`` once. Raises ScrapeError (``unreachable``, ``http_<status>``,
    ``timeout``, ``too_large``, ``malformed``)."""
    request = urllib.request.Request(
        url, headers={"Accept": "application/openmetrics-text;q=0.5, text/plain, */*"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_seconds) as answer:
            body = answer.read(MAX_BODY_BYTES + 1)
            content_type = answer.headers.get("Content-Type", "").lower()
    except urllib.error.HTTPError as exc:
        raise ScrapeError(f"http_{exc.code}", f"HTTP {exc.code}") from None
    except TimeoutError:
        raise ScrapeError("timeout", f"no answer within {timeout_seconds:g} s") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError):
            raise ScrapeError("timeout", f"no answer within {timeout_seconds:g} s") from None
        raise ScrapeError("unreachable", str(reason)) from None
    if len(body) > MAX_BODY_BYTES:
        raise ScrapeError("too_large", f"answer over {MAX_BODY_BYTES} bytes")
    if "json" in content_type or (not content_type and body.lstrip()[:1] == b"{"):
        return parse_expvar(body, url)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ScrapeError("malformed", "answer is not UTF-8 text") from None
    return parse_prometheus_text(text, url, "openmetrics" in content_type)


class _Endpoint:
    """One endpoint's thread: scrape, write, and end its series when a scrape fails."""

    def __init__(self, url: str, interval_seconds: float, scraper: TargetScraper) -> None:
        self.url = url
        self.interval_seconds = interval_seconds
        self.timeout_seconds = min(MAX_TIMEOUT_SECONDS, interval_seconds * SCRAPE_TIMEOUT_SHARE)
        self.scraper = scraper
        self.live: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        self.logged_at: float | None = None
        self.thread = threading.Thread(target=self.run, name=f"finemon-scrape-{url}", daemon=True)

    def run(self) -> None:
        stop = self.scraper.stopped
        while True:
            wake = (math.floor(time.time() / self.interval_seconds) + 1) * self.interval_seconds
            wake = max(wake, self.scraper.first_seconds)
            if stop.wait(max(0.0, wake - time.time())):
                return
            self.scrape_once(time.time())

    def scrape_once(self, started: float) -> None:
        """Scrape now and write at ``started`` (Unix seconds)."""
        endpoint = {"endpoint": self.url}
        clock = time.monotonic()
        try:
            samples = fetch(self.url, self.timeout_seconds)
        except ScrapeError as exc:
            with self.scraper.gate:
                if not self.scraper.recording:
                    return
                capture.counter(ERRORS, {**endpoint, "reason": exc.reason}).increment()
                self._end_series()
            now = time.monotonic()
            if self.logged_at is None or now - self.logged_at >= LOG_EVERY_SECONDS:
                self.logged_at = now
                log.warning(
                    "target metrics: scrape of %s failed reason=%s: %s (its series stop; "
                    "logged at most once a minute)",
                    self.url,
                    exc.reason,
                    exc,
                )
            return
        window = self.scraper.window
        window.wait()
        with self.scraper.gate:
            if not self.scraper.recording:
                return
            seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
            for index, (name, labels, value) in enumerate(samples):
                if index % CHECKPOINT_SERIES == CHECKPOINT_SERIES - 1:
                    window.wait()
                if not math.isfinite(value):
                    continue
                full = TARGET_PREFIX + name
                try:
                    capture.historical.gauge_set(full, labels, value, started)
                except (TypeError, ValueError):  # e.g. a name the intake wrote as a counter
                    continue
                seen.add((full, tuple(labels.items())))
            for name, labels_tuple in self.live - seen:
                capture.gauge(name, dict(labels_tuple)).remove()
            self.live = seen
            capture.counter(SCRAPES, endpoint).increment()
            capture.gauge(SAMPLES, endpoint).set(len(seen))
            capture.gauge(DURATION, endpoint).set(time.monotonic() - clock)

    def _end_series(self) -> None:
        for name, labels_tuple in self.live:
            capture.gauge(name, dict(labels_tuple)).remove()
        self.live = set()


class TargetScraper:
    """Scrapes ``config.urls`` every ``config.interval_seconds`` (default ``tick_seconds``)
    on the wall-clock grid from ``first_seconds`` (Unix time: the run's first tick) on, one
    thread per endpoint, writing only while recording."""

    def __init__(
        self,
        config: TargetMetricsConfig,
        tick_seconds: float,
        first_seconds: float = 0.0,
        window: SampleWindow | None = None,
    ) -> None:
        interval = config.interval_seconds or tick_seconds
        self.config = config
        self.window = window if window is not None else SampleWindow()
        self.first_seconds = first_seconds
        self.gate = threading.Lock()
        self.recording = False
        self.stopped = threading.Event()
        self.endpoints = [_Endpoint(url, interval, self) for url in config.urls]

    def start(self) -> None:
        """Start recording and the endpoints' threads."""
        with self.gate:
            self.recording = True
        for endpoint in self.endpoints:
            endpoint.thread.start()

    def stop(self) -> None:
        """Write nothing more (waits for a write in progress); the threads end by themselves
        within a scrape's timeout."""
        with self.gate:
            self.recording = False
        self.stopped.set()

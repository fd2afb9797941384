"""finemon's own metrics: the node observer's health, the daemon's (``finemon run``), and
capture's counters, whose descriptions are capture's."""

from __future__ import annotations

import capture
from capture.manager import WRITE_ERRORS_DESCRIPTION
from capture.registry import DROPPED_DESCRIPTION, MISSED_TICKS_DESCRIPTION
from common.catalogue.entry import Entry

#: The table of the metrics ``finemon run`` writes itself (described by :mod:`monitor.selfstats`).
DAEMON_TABLE = "daemon"
#: The table of capture's own counters (capture describes them itself).
CAPTURE_TABLE = "capture"


def _entry_from_capture(
    table: str, described: capture.Description, labels: tuple[str, ...] = ()
) -> Entry:
    """The entry of one of capture's own counters, made from capture's description of it (its
    name, text and unit), so the catalogue does not repeat them."""
    assert described.unit is not None
    return Entry(
        table, described.name, "counter", described.unit, labels, description=described.description
    )


#: In the order of the docs tables.
ENTRIES: tuple[Entry, ...] = (
    Entry(
        "observer-health",
        "finemon.processes",
        "gauge",
        "count",
        source="`/proc/<pid>/stat`",
        description="Processes whose stat finemon read this tick, all containers",
    ),
    Entry(
        "observer-health",
        "finemon.observer.duration_seconds",
        "gauge",
        "seconds",
        description="Wall time of the observer's whole sample (discovery, reads, emission)",
    ),
    Entry(
        "observer-health",
        "finemon.discovery.duration_seconds",
        "gauge",
        "seconds",
        description="Wall time of the cgroup tree scan",
    ),
    Entry(
        "observer-health",
        "finemon.pss.reads",
        "counter",
        "count",
        source="`/proc/<pid>/smaps_rollup`",
        description="PSS readings (smaps_rollup) done",
        derivation="Appears with the first",
    ),
    Entry(
        "observer-health",
        "finemon.pss.deferred",
        "counter",
        "count",
        description="PSS readings that were due but did not fit in the tick's budget",
        derivation="Appears with the first",
    ),
    Entry(
        DAEMON_TABLE,
        "finemon.containers",
        "gauge",
        "count",
        source="discovery",
        description="Containers sampled this tick",
    ),
    Entry(
        DAEMON_TABLE,
        "finemon.containers_skipped",
        "gauge",
        "count",
        labels=("reason",),
        source="discovery",
        description="Cgroups left out this tick, by reason",
        derivation=(
            "Reasons: `empty` (no processes), `pause` (pod sandbox), `conmon` (CRI-O/Podman "
            "monitor), "
            "`not_container` (an unexpected directory where a pod or container was expected), "
            "`vanished` (removed during the scan), `access_denied`, `unreadable` (its "
            "`cgroup.procs` fails with another errno). A `cgroup.procs` line that is no pid is "
            "skipped, the cgroup kept with its other pids, and counted in `finemon.read_errors`"
        ),
    ),
    Entry(
        DAEMON_TABLE,
        "finemon.read_errors",
        "counter",
        "count",
        labels=("reason",),
        source="every file read",
        description="Failed reads and refused values since finemon started, by reason",
        derivation=(
            "Reasons: `vanished`, `access_denied`, `malformed` (content not in the kernel's "
            "format), `out_of_range` (a number no kernel writes in that file: negative where it "
            "prints an unsigned value, above 2^63-1, outside the file's range), `too_large` (a "
            "file longer than its cap of bytes, not parsed), `too_many_series` (values past a "
            "file's cap of series, not written), "
            "`other` (any other errno, or a failed discovery). A bad file counts 1 per reading, "
            "a bad `cgroup.procs` line 1 per line, a value past the series cap 1 per value. A "
            "series appears with its first error; the first error of each reason and file name "
            "is also logged once. See [Bad input](#bad-input)"
        ),
    ),
    Entry(
        DAEMON_TABLE,
        "finemon.self.cpu_millicores",
        "gauge",
        "millicores",
        source="finemon's own CPU time",
        description="CPU used by finemon itself since the previous tick, in millicores",
    ),
    Entry(
        DAEMON_TABLE,
        "finemon.self.rss_bytes",
        "gauge",
        "bytes",
        source="`/proc/self/statm`",
        description="Resident memory of finemon itself",
    ),
    Entry(
        DAEMON_TABLE,
        "finemon.tick.duration_seconds",
        "gauge",
        "seconds",
        description="Time the observer's sample took this tick",
        derivation="Monotonic time of `observer.sample()`",
    ),
    Entry(
        DAEMON_TABLE,
        "finemon.ticks_skipped",
        "counter",
        "count",
        description="Ticks not sampled because a sample overran their boundary",
        derivation="The files repeat the last values for them",
    ),
    Entry(
        DAEMON_TABLE,
        "finemon.write_errors",
        "counter",
        "count",
        description="Failed rotations or publications of finemon's files",
        derivation="The current file goes on",
    ),
    Entry(
        DAEMON_TABLE,
        "finemon.sample_errors",
        "counter",
        "count",
        description="Samples that raised an exception",
        derivation="An observer bug; the recording goes on",
    ),
    Entry(
        DAEMON_TABLE,
        "finemon.size_limit.reached",
        "gauge",
        "-",
        source="output directory size",
        description="1 while finemon idles because its output directory reached the size limit",
        derivation="Only then, in the live view: nothing is recorded while idle",
    ),
    Entry(
        DAEMON_TABLE,
        "finemon.size_limit.used_bytes",
        "gauge",
        "bytes",
        source="output directory size",
        description="Bytes used in the output directory when the size limit was found reached",
        derivation="Idle only",
    ),
    Entry(
        DAEMON_TABLE,
        "finemon.size_limit.limit_bytes",
        "gauge",
        "bytes",
        source="`--size-limit`",
        description="The output directory's size limit (--size-limit)",
        derivation="Idle only",
    ),
    Entry(
        DAEMON_TABLE,
        "finemon.disk_full.reached",
        "gauge",
        "-",
        source="`statvfs` of the output directory",
        description="1 while finemon idles because its output directory's filesystem is full",
        derivation="Only then, in the live view: nothing is recorded while idle",
    ),
    Entry(
        DAEMON_TABLE,
        "finemon.disk_full.free_bytes",
        "gauge",
        "bytes",
        source="`statvfs` of the output directory",
        description="Bytes free on the output directory's filesystem when it was found full",
        derivation="Idle only; -1 when statvfs cannot read it",
    ),
    Entry(
        DAEMON_TABLE,
        "finemon.phase",
        "gauge",
        "seconds",
        labels=("phase",),
        source="`finemon mark`",
        description="A phase of the run began: the Unix time of its mark, in seconds",
        derivation=(
            "One series per phase name (the label), from the first tick taken after the mark "
            "on; see docs/experiments.md"
        ),
    ),
    Entry(
        DAEMON_TABLE,
        "finemon.intake.requests",
        "counter",
        "count",
        labels=("path",),
        source="`--intake-port`",
        description="Requests to the intake, by path",
        derivation=(
            "Every request, answered or refused; paths that are not an intake's (and past 64 "
            "distinct ones) count as `other`. See [intake.md](intake.md)"
        ),
    ),
    Entry(
        DAEMON_TABLE,
        "finemon.intake.bad_requests",
        "counter",
        "count",
        labels=("reason",),
        source="`--intake-port`",
        description="Intake requests refused, by reason",
        derivation=(
            "`malformed` (400), `too_large` (413: over `--intake-max-bytes` before or after "
            "decompression), `not_recording` (503: before recording, while idle, during the "
            "drain)"
        ),
    ),
    Entry(
        DAEMON_TABLE,
        "finemon.intake.bytes_received",
        "counter",
        "bytes",
        source="`--intake-port`",
        description="Request body bytes the intake read, as sent (compressed)",
    ),
    Entry(
        DAEMON_TABLE,
        "finemon.intake.points_received",
        "counter",
        "count",
        source="`--intake-port`",
        description="Points in the series and sketches the intake decoded",
        derivation="A sketch point counts 4 (its count, sum, min and max)",
    ),
    Entry(
        DAEMON_TABLE,
        "finemon.intake.points_dropped",
        "counter",
        "count",
        labels=("reason",),
        source="`--intake-port`",
        description="Reported points the intake did not write, by reason",
        derivation=(
            "`too_many_series` (past `--intake-max-series`), `negative_count`, `non_finite`, "
            "`rejected` (the capture refused it); late and future points are in "
            "`capture.dropped`"
        ),
    ),
    Entry(
        DAEMON_TABLE,
        "finemon.intake.series",
        "gauge",
        "count",
        source="`--intake-port`",
        description="Distinct reported series the intake writes (bounded by --intake-max-series)",
    ),
    Entry(
        DAEMON_TABLE,
        "finemon.target_metrics.scrapes",
        "counter",
        "count",
        labels=("endpoint",),
        source="`--target-metrics`",
        description="Scrapes of a --target-metrics endpoint that worked",
    ),
    Entry(
        DAEMON_TABLE,
        "finemon.target_metrics.errors",
        "counter",
        "count",
        labels=("endpoint", "reason"),
        source="`--target-metrics`",
        description="Scrapes of a --target-metrics endpoint that failed, by reason",
        derivation=(
            "`unreachable`, `timeout`, `http_<code>`, `malformed`, `too_large`; the "
            "endpoint's series stop until a scrape works"
        ),
    ),
    Entry(
        DAEMON_TABLE,
        "finemon.target_metrics.samples",
        "gauge",
        "count",
        labels=("endpoint",),
        source="`--target-metrics`",
        description="Samples the last scrape of an endpoint wrote",
    ),
    Entry(
        DAEMON_TABLE,
        "finemon.target_metrics.duration_seconds",
        "gauge",
        "seconds",
        labels=("endpoint",),
        source="`--target-metrics`",
        description="Time the last scrape of an endpoint took, answer and writes",
    ),
    _entry_from_capture(CAPTURE_TABLE, DROPPED_DESCRIPTION, ("reason",)),
    _entry_from_capture(CAPTURE_TABLE, MISSED_TICKS_DESCRIPTION),
    _entry_from_capture(CAPTURE_TABLE, WRITE_ERRORS_DESCRIPTION, ("stage",)),
)

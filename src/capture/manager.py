"""CaptureManager: ticks, journal, Parquet files and rotation for one recorder."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import pyarrow as pa

from capture import facade
from capture.accumulator import TickFrame
from capture.descriptions import Description
from capture.files import ParquetFile, journal_path, partial_path
from capture.handles import Series, SeriesInfo
from capture.journal import JournalError, JournalWriter
from capture.keys import RESERVED_COLUMNS, canonical_labels
from capture.recorder import CaptureRecorder
from capture.recover import RecoveryReport, recover, recover_journal
from capture.summary import SummaryBuilder
from capture.tables import ROW_GROUP_ROWS, RowLayout, TableBuilder, frames_to_tables

log = logging.getLogger("capture")

#: Counter of failed writes (journal or Parquet), by ``stage``.
WRITE_ERRORS_METRIC = "capture.write_errors"
WRITE_ERRORS_DESCRIPTION = Description(
    WRITE_ERRORS_METRIC,
    "Failed writes, by stage: journal, parquet, finalize, tick, on_flush (the owner's flush "
    "hook raised)",
    "count",
)
#: Key of the files' key-value metadata that holds the metrics' descriptions (JSON).
METRICS_METADATA_KEY = "capture.metrics"
#: At most one log line per failing stage in this many seconds.
ERROR_LOG_SECONDS = 60.0

#: For tests: called with the name of each step of a journal's creation or of a rotation as it
#: is reached (``journal_created``, ``switched``, ``carry_series``, ``carry_frames``,
#: ``carried``, ``published``; see :meth:`CaptureManager.rotate`), so a test can kill the
#: process at an exact point. None otherwise.
step_hook: Callable[[str], None] | None = None


def _step(name: str) -> None:
    if step_hook is not None:
        step_hook(name)


@dataclass(frozen=True, slots=True)
class PublishedFile:
    """A finished Parquet file: where, how many rows and ticks, its size in bytes."""

    path: Path
    rows: int
    row_groups: int
    bytes: int
    first_tick: int | None
    last_tick: int | None


class CaptureWriteError(OSError):
    """A file could not be finalized; its journal was kept for :func:`capture.recover`."""


class CaptureManager:
    """Records every metric of the process into Parquet files at ``path``.

    ``start()`` recovers what a killed predecessor left in the directory, opens the file, installs
    its :class:`CaptureRecorder` as the process recorder and starts the tick thread. Every
    ``tick_seconds`` (on the wall-clock grid) the thread takes the tick that just ended; the owner
    may instead take a tick the moment its values are complete with :meth:`take_tick` (finemon
    does this right after each sample, so a tick holds exactly the values sampled for it). Each
    taken tick is journaled at once; ticks leaving the ``window_ticks`` window are written at a
    flush (every ``flush_seconds``) once they hold at least ``row_group_rows`` rows or their
    series changed, as row groups of at most about that many rows (each a range of series,
    sorted by series then time), so a flush's memory does not grow with the node and a small
    program's file is not made of small row groups.
    :meth:`rotate` publishes the current file and continues in a new one (the window flows into
    the new file, so no tick is lost or written twice); :meth:`close` takes the tick in
    progress, drains the window and publishes the file.

    A SIGKILL loses at most the tick in progress: every taken tick is already in the journal,
    which :func:`capture.recover` turns into a valid file (ticks taken while a flush or a rotation
    writes reach it once that is done); a rotation included, as the journals and published files
    together hold every journaled tick once at every instant. A file of no rows is never
    published. An unwritable path or a full disk makes
    ``start()``/``rotate()`` raise OSError; a later failure inside the tick thread is logged and
    counted in ``capture.write_errors``, and the journal is kept so nothing written is lost.

    Each file's key-value metadata holds ``capture.run_id``, ``capture.tick_seconds``,
    ``capture.window_ticks``, ``capture.metrics`` (the descriptions of the metrics the file
    holds, JSON ``{name: {"kind", "unit", "description"}}``, see :func:`capture.describe`; a
    file rebuilt from its journal has all those known when it was opened), ``capture.summary``
    (its rows' time range, keys, metrics and aggregates, grouped by the first of
    ``summary_key_labels`` a series has, with sketches of the gauges
    ``summary_sketch_metrics`` names and per-series aggregates of those
    ``summary_series_metrics`` names; aggregates only of ``summary_aggregate_metrics`` when
    given, else of every metric: :mod:`capture.summary`) and the owner's ``metadata``.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        tick_seconds: float = 1.0,
        window_ticks: int = 60,
        flush_seconds: float = 10,
        row_group_rows: int = ROW_GROUP_ROWS,
        compression_level: int = 3,
        global_labels: Mapping[str, str] | None = None,
        label_columns: Sequence[str] = (),
        expire_after_ticks: int | None = None,
        run_id: str | None = None,
        auto_tick: bool = True,
        metadata: Mapping[str, str] | None = None,
        summary_key_labels: Sequence[str] = (),
        summary_sketch_metrics: Sequence[str] = (),
        summary_series_metrics: Sequence[str] = (),
        summary_aggregate_metrics: Sequence[str] | None = None,
        on_publish: Callable[[PublishedFile], None] | None = None,
        on_flush: Callable[[], object] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not flush_seconds > 0:
            raise ValueError(f"flush_seconds must be positive, got {flush_seconds!r}")
        if row_group_rows < 1:
            raise ValueError(f"row_group_rows must be at least 1, got {row_group_rows!r}")
        if not 1 <= compression_level <= 22:
            raise ValueError(f"compression_level must be 1..22, got {compression_level!r}")
        columns = tuple(label_columns)
        for column in columns:
            if not isinstance(column, str) or not column:
                raise ValueError(f"label column names must be non-empty str, got {column!r}")
            if column in RESERVED_COLUMNS:
                raise ValueError(f"label column {column!r} collides with a fixed column")
        if len(set(columns)) != len(columns):
            raise ValueError(f"label columns repeat a name: {columns!r}")
        self.path = Path(path)
        self.run_id = run_id or uuid.uuid4().hex
        #: How each file's summary groups its rows and which gauges it sketches
        #: (:mod:`capture.summary`).
        self.summary_key_labels = tuple(summary_key_labels)
        self.summary_sketch_metrics = tuple(summary_sketch_metrics)
        self.summary_series_metrics = tuple(summary_series_metrics)
        self.summary_aggregate_metrics = (
            None if summary_aggregate_metrics is None else tuple(summary_aggregate_metrics)
        )
        self.flush_seconds = float(flush_seconds)
        self.row_group_rows = int(row_group_rows)
        self.compression_level = int(compression_level)
        self.auto_tick = auto_tick
        self.on_publish = on_publish
        #: Called in the writer thread after each flush that wrote a row group (finemon returns
        #: the flush's freed buffers to the kernel there); its exceptions are counted, not raised.
        self.on_flush = on_flush
        self._clock = clock
        self.recorder = CaptureRecorder(
            tick_seconds=tick_seconds,
            window_ticks=window_ticks,
            global_labels=global_labels,
            expire_after_ticks=expire_after_ticks,
            clock=clock,
        )
        self.recorder.journaling = True
        self.recorder.descriptions.add(WRITE_ERRORS_DESCRIPTION)
        self.label_columns = columns
        self.global_labels = canonical_labels(global_labels)
        self.metadata = dict(metadata or {})
        self.recovery: RecoveryReport | None = None
        self._io_lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._file: ParquetFile | None = None
        self._journal: JournalWriter | None = None
        self._journals_made = 0
        self._file_ticks: list[int] = []
        self._next_flush = 0.0
        self._closed = False
        self._tables = TableBuilder()
        self._error_log: dict[str, tuple[float, int]] = {}

    # ------------------------------------------------------------------ life cycle
    def __enter__(self) -> CaptureManager:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(
        self, first_tick: int | None = None, path: str | Path | None = None
    ) -> CaptureManager:
        """Recover leftovers, open the file, install the recorder, start the tick thread.

        ``first_tick`` is the run's first tick (``fetch_index`` 0); default: the tick in progress.
        ``path`` replaces the constructor's path (an owner that registered its series on
        :attr:`recorder` before knowing when its first tick would be). Raises OSError (nothing
        installed) when the file or its journal cannot be created.
        """
        if self._file is not None or self._closed:
            raise RuntimeError("CaptureManager.start() called twice")
        if path is not None:
            self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.recovery = recover(self.path.parent)
        self.recorder.begin(first_tick)
        # The descriptions given so far, for the first file's metadata (the recorder is only
        # installed, and so given them, once that file is open).
        facade.pending_recorder().describe_to(self.recorder)
        with self._io_lock:
            new_file, journal = self._create(self.path)
            self._begin(new_file, journal, owned_from=self.recorder.first_tick)
        facade.set_recorder(self.recorder)
        self._next_flush = self._clock() + self.flush_seconds
        # The thread journals and flushes even when the owner takes the ticks.
        self._thread = threading.Thread(target=self._run, name="capture-tick", daemon=True)
        self._thread.start()
        return self

    def _header(self, owned_from: int) -> dict[str, Any]:
        first = self.recorder.first_tick
        return {
            "run_id": self.run_id,
            "tick_seconds": self.recorder.tick_seconds,
            "first_tick": owned_from if first is None else first,
            "owned_from": owned_from,
            # The journals of a run in the order they were made (several may own from one tick).
            "sequence": self._journals_made,
            "label_columns": list(self.label_columns),
            "global_labels": [list(p) for p in self.global_labels],
            "compression_level": self.compression_level,
            "metadata": self._file_metadata(),
            "summary_key_labels": list(self.summary_key_labels),
            "summary_sketch_metrics": list(self.summary_sketch_metrics),
            "summary_series_metrics": list(self.summary_series_metrics),
            "summary_aggregate_metrics": None
            if self.summary_aggregate_metrics is None
            else list(self.summary_aggregate_metrics),
        }

    def _file_metadata(self) -> dict[str, str]:
        meta = {
            "capture.run_id": self.run_id,
            "capture.tick_seconds": repr(self.recorder.tick_seconds),
            "capture.window_ticks": str(self.recorder.window_ticks),
        }
        if len(self.recorder.descriptions):
            # The dataset documents itself: what each metric means, as described when the file
            # was opened.
            meta[METRICS_METADATA_KEY] = self.recorder.descriptions.metadata_json(
                self.recorder.kind_of
            )
        meta.update(self.metadata)
        return meta

    def _layout(self) -> RowLayout:
        first = self.recorder.first_tick
        return RowLayout(
            run_id=self.run_id,
            tick_seconds=self.recorder.tick_seconds,
            first_tick=0 if first is None else first,
            label_columns=self.label_columns,
            global_labels=self.global_labels,
        )

    def _create(self, path: Path) -> tuple[ParquetFile, JournalWriter]:
        """Create a file and its journal (raises OSError; nothing changed then)."""
        schema = RowLayout(self.run_id, 1.0, 0, self.label_columns).schema
        summary = SummaryBuilder(
            self.run_id,
            self.recorder.tick_seconds,
            global_labels=self.global_labels,
            label_columns=self.label_columns,
            key_labels=self.summary_key_labels,
            sketch_metrics=self.summary_sketch_metrics,
            series_metrics=self.summary_series_metrics,
            aggregate_metrics=self.summary_aggregate_metrics,
        )
        new_file = ParquetFile(path, schema, self.compression_level, self._file_metadata(), summary)
        try:
            journal = JournalWriter(journal_path(path))
        except BaseException:
            new_file.abandon()
            raise
        return new_file, journal

    def _begin(self, new_file: ParquetFile, journal: JournalWriter, owned_from: int | None) -> None:
        """Make ``new_file`` current; its journal owns the ticks from ``owned_from`` on."""
        start = owned_from if owned_from is not None else self.recorder.current_tick()
        _step("journal_created")
        try:
            journal.begin(self._header(start))
        except BaseException:
            journal.close(delete=True)
            new_file.abandon()
            raise
        self._journals_made += 1
        self._file, self._journal = new_file, journal
        self._file_ticks = []

    def take_tick(self, tick: int | None = None) -> int:
        """Take the tick in progress now, or ``tick``, and any earlier one not yet taken.

        Call it right after writing the values that belong to the tick. Returns how many ticks
        were taken (0 if that tick was taken already).
        """
        taken = self.recorder.take_tick(tick)
        self._wake.set()
        return taken

    def rotate(self, new_path: str | Path | Callable[[int], str | Path]) -> PublishedFile | None:
        """Publish the current file and continue in ``new_path``; returns the published file, or
        None when it held no row (nothing is published then: the window holds every tick it had).

        ``new_path`` may be a function of the first tick the new file will hold (the oldest
        tick of the window at the switch), for names that carry their first time. The switch
        itself is short (the recorder's lock is held while the new file and journal are
        created); carrying the window into the new journal and publishing the old file follow,
        so an owner may call this from another thread while it goes on taking ticks.
        Raises OSError, and keeps writing the current file, when ``new_path`` cannot be created.
        Raises :class:`CaptureWriteError` (after switching to the new file) when the old file could
        not be finalized; its journal is kept for recovery.

        A kill at any step loses no journaled tick: the old journal receives every tick taken
        before the switch, the window is carried into the new journal (and fsynced), and only
        then is the old file published and its journal deleted. Until then recovery takes the
        window from the old journal (see :func:`capture.recover`).
        """
        with self._io_lock:
            old_file, old_journal = self._file, self._journal
            if old_file is None or old_journal is None:
                raise RuntimeError("CaptureManager is not started")
            # Every tick taken before this call reaches the old journal first, so a kill at any
            # later step can lose only ticks taken while the rotation runs.
            self._write_events(old_journal)
            recorder = self.recorder
            with recorder.lock:
                window = recorder.window()
                owned_from = window[0].tick if window else recorder.current_tick()
                path = Path(new_path(owned_from) if callable(new_path) else new_path)
                new_file, new_journal = self._create(path)  # may raise: nothing changed yet
                events = recorder.pop_events()
                ready, infos = recorder.pop_ready()
                # The series the window carried over below lists, taken under the recorder's
                # lock while sampling goes on (and may add some): a list of the handles, not a
                # copy of the mapping (5 MB more of a rotation's peak at 100,000 series).
                carried = list(infos.values())
                old_ticks = self._file_ticks
                self._begin(new_file, new_journal, owned_from)
                self._file_ticks, new_ticks = old_ticks, self._file_ticks
            _step("switched")
            self._write_event_list(old_journal, events)
            self._carry_window(window, carried)
            _step("carried")
            self._write_frames(old_file, ready, infos)
            try:
                published = self._publish(old_file, old_journal, end=owned_from)
            finally:
                self._file_ticks = new_ticks
            _step("published")
            return published

    def _carry_window(self, window: list[TickFrame], carried: list[SeriesInfo]) -> None:
        # The frames as taken (the journal writes the first in full, then what changed) and
        # their fixes, which replay applies on top; then fsynced, before the old journal goes.
        journal = self._journal
        assert journal is not None
        fixes = [
            (frame.tick, sid, value)
            for frame in window
            for sid, value in dict(frame.fixes).items()  # a copy: fixes may be added meanwhile
        ]
        try:
            journal.write(series=((i.sid, i.kind, i.name, i.labels) for i in carried))  # batched
            _step("carry_series")
            journal.write(frames=window)
            _step("carry_frames")
            journal.write(fixes=fixes)
            journal.sync()
        except (OSError, pa.ArrowException) as exc:
            self._error("journal", exc)

    def _keep(self, journal: JournalWriter, end: int | None) -> None:
        """Close ``journal`` for recovery; it owns the ticks below ``end`` (None: all)."""
        if end is not None:
            try:
                journal.end(end)
            except (OSError, pa.ArrowException) as exc:
                self._error("journal", exc)
        journal.close(delete=False)

    def _publish(
        self, file: ParquetFile, journal: JournalWriter, end: int | None
    ) -> PublishedFile | None:
        """Publish ``file`` (its ticks below ``end``: the next file holds the later ones) and
        delete its journal; None, and nothing published, when it holds no row."""
        if file.failed:
            file.abandon()
            self._keep(journal, end)
            try:
                rebuilt = recover_journal(journal.path, end)
            except (JournalError, OSError, pa.ArrowException, ValueError, KeyError) as exc:
                log.error("capture: could not rebuild %s: %s", journal.path, exc)
                raise CaptureWriteError(
                    f"{file.final}: not published; journal kept for recovery"
                ) from exc
            if rebuilt is None:
                return None
            size = file.final.stat().st_size
            ticks = self._file_ticks
            published = PublishedFile(
                file.final,
                rebuilt.rows,
                1,
                size,
                min(ticks) if ticks else None,
                max(ticks) if ticks else None,
            )
        elif file.rows == 0:
            file.abandon()
            journal.close(delete=True)
            return None
        else:
            try:
                if file.metric_names and len(self.recorder.descriptions):
                    # The footer describes the metrics this file holds, not every one described:
                    # a program that describes many metrics would give a small file more bytes
                    # of descriptions than of data.
                    file.set_metadata(
                        {
                            METRICS_METADATA_KEY: self.recorder.descriptions.metadata_json(
                                self.recorder.kind_of, file.metric_names
                            )
                        }
                    )
                path = file.finalize()
            except OSError as exc:
                self._keep(journal, end)
                self._error("finalize", exc)
                raise CaptureWriteError(
                    f"{file.final}: not published ({exc}); journal kept for recovery"
                ) from exc
            journal.close(delete=True)
            ticks = self._file_ticks
            published = PublishedFile(
                path,
                file.rows,
                file.row_groups,
                path.stat().st_size,
                min(ticks) if ticks else None,
                max(ticks) if ticks else None,
            )
        if self.on_publish is not None:
            self.on_publish(published)
        return published

    def close(self, *, drain: bool = True) -> PublishedFile | None:
        """Stop ticking, take the tick in progress, drain the window and publish the file.

        A manager driven by its owner (``auto_tick=False``) takes no tick here: the owner took
        the last one it sampled. With ``drain=False`` (a second signal: hurry) nothing more is
        written: the file is left to recovery from its journal, which every taken tick already
        reached. Uninstalls the recorder if it is still the installed one. Returns the published
        file, or None when nothing was published (no row to write, or ``drain=False``).
        """
        if self._closed:
            return None
        self._closed = True
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        published: PublishedFile | None = None
        try:
            with self._io_lock:
                file, journal = self._file, self._journal
                self._file = self._journal = None
                if file is None or journal is None:
                    return None
                if drain:
                    if self.auto_tick:
                        self.recorder.take_tick()
                    self.recorder.drain()
                    self._write_events(journal)
                    frames, infos = self.recorder.pop_ready()
                    self._write_frames(file, frames, infos)
                    published = self._publish(file, journal, end=None)
                else:
                    self._write_events(journal)
                    try:
                        journal.sync()
                    except OSError as exc:
                        self._error("journal", exc)
                    file.abandon()
                    journal.close(delete=False)
        finally:
            if facade.get_recorder() is self.recorder:
                facade.set_recorder(None)
        return published

    # ------------------------------------------------------------------ the tick thread
    def _run(self) -> None:
        recorder = self.recorder
        while not self._stop.is_set():
            now = self._clock()
            boundary = (recorder.tick_of(now) + 1) * recorder.tick_seconds
            self._wake.wait(max(0.0, boundary - now) + 0.0005)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                with self._io_lock:
                    if self.auto_tick:
                        recorder.take_tick(recorder.tick_of(self._clock()) - 1)
                    self._write_events()
                    if self._clock() >= self._next_flush:
                        self._next_flush = self._clock() + self.flush_seconds
                        self._flush()
            except Exception as exc:  # the tick loop must never die
                log.exception("capture: tick loop error")
                self._error("tick", exc)

    def _error(self, stage: str, exc: BaseException) -> None:
        # Counted every time; logged the first time and then at most once a minute per stage
        # (a full disk fails every tick).
        self.recorder.counter(WRITE_ERRORS_METRIC, {"stage": stage}).increment()
        now = time.monotonic()
        last, suppressed = self._error_log.get(stage, (-ERROR_LOG_SECONDS, 0))
        if now - last >= ERROR_LOG_SECONDS:
            more = f" ({suppressed} more since the last report)" if suppressed else ""
            log.error("capture: %s failed: %s%s", stage, exc, more)
            self._error_log[stage] = (now, 0)
        else:
            self._error_log[stage] = (last, suppressed + 1)

    def _write_events(self, journal: JournalWriter | None = None) -> None:
        journal = journal or self._journal
        if journal is None:
            return
        self._write_event_list(journal, self.recorder.pop_events())

    def _write_event_list(self, journal: JournalWriter, events: list[tuple[str, object]]) -> None:
        series: list[tuple[int, str, str, tuple[tuple[str, str], ...]]] = []
        frames: list[TickFrame] = []
        fixes: list[tuple[int, int, float | int | None]] = []
        for kind, payload in events:
            if kind == "series":
                assert isinstance(payload, Series)
                series.append((payload.sid, payload.kind, payload.name, payload.labels))
            elif kind == "frame":
                assert isinstance(payload, TickFrame)
                frames.append(payload)
            else:
                assert isinstance(payload, list)
                fixes.extend(payload)
        if not (series or frames or fixes):
            return
        try:
            journal.write(series=series, frames=frames, fixes=fixes)
        except (OSError, pa.ArrowException) as exc:
            self._error("journal", exc)

    def _flush(self) -> None:
        if self._file is None or self._journal is None:
            return
        frames: list[TickFrame] = []
        # The ticks that left the window are written once they make a row group: a small,
        # steady node's file gets a few large row groups, not one small group (its dictionaries
        # and footer entry repeated) every flush. Until then they wait in the recorder, as
        # deltas; the journal holds them already. When series came or went meanwhile they are
        # written at once (the series that ended are then forgotten: waiting under churn would
        # keep their memory). A rotation or close writes them whatever their size.
        rows, changed = self.recorder.ready_rows()
        if changed or rows >= self.row_group_rows:
            frames, infos = self.recorder.pop_ready()
            self._write_frames(self._file, frames, infos)
        try:
            self._journal.sync()
        except OSError as exc:
            self._error("journal", exc)
        if frames and self.on_flush is not None:
            try:
                self.on_flush()
            except Exception as exc:
                self._error("on_flush", exc)

    def _write_frames(
        self, file: ParquetFile, frames: list[TickFrame], infos: Mapping[int, SeriesInfo]
    ) -> None:
        if not frames or file.failed:
            return
        try:
            # A table per range of series, each a row group: a flush never holds all its rows.
            layout, rows = self._layout(), self.row_group_rows
            tables = frames_to_tables(frames, infos, layout, self._tables, rows, file.summary)
            for table in tables:
                file.write(table)
                del table  # not alive while the next one is built
            self._file_ticks.extend((frames[0].tick, frames[-1].tick))
        except (OSError, pa.ArrowException) as exc:
            # The journal holds every tick: the file is rebuilt from it when published.
            file.failed = True
            self._error("parquet", exc)

    # ------------------------------------------------------------------ inspection
    @property
    def current_path(self) -> Path | None:
        """The final name of the file being written (None once closed)."""
        return None if self._file is None else self._file.final

    def live_files(self) -> list[Path]:
        """The files on disk that are still growing: the hidden Parquet file being written and
        its journal (empty once closed). For size accounting; they may vanish at any moment (a
        rotation publishes them)."""
        current = self.current_path
        return [] if current is None else [partial_path(current), journal_path(current)]

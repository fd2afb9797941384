"""The tick journal: every taken tick and every fix, appended as it happens.

A journal is an Arrow IPC stream (ZSTD-compressed batches) named ``.<file>.parquet.journal``
beside the file it backs. It holds a header, the definition of each series, every taken tick
and every fix a delayed write made. A tick is written in full when the set of live series
changed since the previous tick, else as the values that changed (most do not, tick to tick;
a delta frame of the recorder is written as it is: the series written during the tick), followed
by a marker that closes the tick. It is flushed to the OS
after every batch, so a SIGKILL loses nothing that was written, and fsynced at every flush and
once a rotation carried its window into it.
While its writer lives it holds an exclusive ``flock``, so recovery never touches a live journal.
Replaying it (:func:`read_journal`) rebuilds every tick the file owns, including ticks that were
still inside the accumulator window. A journal that ends before its header is complete (a kill
or a full disk while it was created) holds nothing: :class:`JournalCutShortError` says so, apart
from a damaged journal (:class:`JournalError`).
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa

from capture.accumulator import FrameValues, TickFrame
from capture.keys import LabelTuple
from capture.tables import PointColumns, float64_array, int64_array

JOURNAL_SCHEMA = pa.schema(
    [
        pa.field("rtype", pa.int8()),
        pa.field("tick", pa.int64()),
        pa.field("sid", pa.int64()),
        pa.field("fval", pa.float64()),
        pa.field("ival", pa.int64()),
        pa.field("text", pa.string()),
    ]
)
R_HEADER, R_SERIES, R_FIX = 0, 1, 3
#: Gauge/counter values of a tick: every live series (FULL) or those that changed (DELTA).
R_GFULL, R_CFULL, R_GDELTA, R_CDELTA = 2, 4, 5, 6
#: Closes a tick; its text says which parts were full: "G"/"g" gauges full/delta, "C"/"c".
R_TICK = 7
#: The file owns only the ticks below ``tick`` (the next file holds the later ones); written to
#: a journal kept for recovery after its file could not be published at a rotation.
R_END = 8
#: Label sets whose JSON a writer keeps (a node's containers, with room to spare).
_LABELS_JSON_CACHE = 65536
#: Series definitions per journal batch.
SERIES_PER_BATCH = 4096


@dataclass(frozen=True, slots=True)
class JournalSeries:
    """A series as the journal defines it."""

    kind: str
    name: str
    labels: LabelTuple


def _rows(
    rtype: int,
    ticks: list[int],
    sids: list[int],
    fvals: list[float | None],
    ivals: list[int | None],
    texts: list[str | None],
) -> pa.RecordBatch:
    n = len(ticks)
    return pa.record_batch(
        [
            pa.repeat(pa.scalar(rtype, pa.int8()), n),
            pa.array(ticks, pa.int64()),
            pa.array(sids, pa.int64()),
            pa.array(fvals, pa.float64()),
            pa.array(ivals, pa.int64()),
            pa.array(texts, pa.string()),
        ],
        schema=JOURNAL_SCHEMA,
    )


def _part(rtype: int, tick: int, sids: pa.Array, values: pa.Array, gauge: bool) -> list[pa.Array]:
    n = len(sids)
    return [
        pa.repeat(pa.scalar(rtype, pa.int8()), n),
        pa.repeat(pa.scalar(tick, pa.int64()), n),
        sids,
        values if gauge else pa.nulls(n, pa.float64()),
        pa.nulls(n, pa.int64()) if gauge else values,
        pa.nulls(n, pa.string()),
    ]


class _Previous:
    """The last journaled tick's values of one kind, to journal only what changed."""

    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values: FrameValues | None = None

    def part(self, tick: int, values: FrameValues, gauge: bool) -> tuple[list[pa.Array], bool]:
        """The rows of one kind for ``tick``, and whether they are the full set."""
        full, delta = (R_GFULL, R_GDELTA) if gauge else (R_CFULL, R_CDELTA)
        to_arrow = float64_array if gauge else int64_array
        previous = self.values
        self.values = values
        vals, _flags, positions, base = values.state
        # The recorder shares one series set between ticks while the live series do not change.
        if previous is not None and values.series is previous.series:
            if positions is not None and base is previous:
                # A delta frame against the tick journaled last: its rows as they are.
                chosen = np.frombuffer(values.series.sids, np.int64)[
                    np.frombuffer(positions, np.uint64)
                ]
                return _part(delta, tick, pa.array(chosen), to_arrow(vals), gauge), False
            previous_vals, _, previous_positions, _ = previous.state
            if positions is None and previous_positions is None:
                dtype = np.float64 if gauge else np.int64
                current = np.frombuffer(vals, dtype)
                changed = current != np.frombuffer(previous_vals, dtype)
                sids = np.frombuffer(values.series.sids, np.int64)[changed]
                rows = _part(delta, tick, pa.array(sids), pa.array(current[changed]), gauge)
                return rows, False
        sids = int64_array(values.series.sids)
        return _part(full, tick, sids, to_arrow(values.dense()[0]), gauge), True


def _frame_batch(frame: TickFrame, gauges: _Previous, counters: _Previous) -> pa.RecordBatch:
    g, g_full = gauges.part(frame.tick, frame.g, True)
    c, c_full = counters.part(frame.tick, frame.c, False)
    modes = ("G" if g_full else "g") + ("C" if c_full else "c")
    marker = _rows(R_TICK, [frame.tick], [-1], [None], [None], [modes])
    return pa.record_batch(
        [pa.concat_arrays([g[i], c[i], marker.column(i)]) for i in range(6)],
        schema=JOURNAL_SCHEMA,
    )


class JournalWriter:
    """Appends journal records to ``path``; raises OSError if it cannot be created."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] = open(path, "wb")  # noqa: SIM115 - lives as long as the writer
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            options = pa.ipc.IpcWriteOptions(compression="zstd")
            self._stream = pa.ipc.new_stream(self._file, JOURNAL_SCHEMA, options=options)
            self._gauges, self._counters = _Previous(), _Previous()
            self._labels_json: dict[LabelTuple, str] = {}
        except BaseException:
            self._file.close()
            path.unlink(missing_ok=True)  # created here: not left behind
            raise

    def begin(self, header: dict[str, Any]) -> None:
        """Write the header (run, layout, the first tick this file owns)."""
        self._stream.write_batch(_rows(R_HEADER, [0], [0], [None], [None], [json.dumps(header)]))
        self._file.flush()

    def write(
        self,
        series: Iterable[tuple[int, str, str, LabelTuple]] = (),
        frames: Sequence[TickFrame] = (),
        fixes: Sequence[tuple[int, int, float | int | None]] = (),
    ) -> None:
        """Append series definitions, then frames, then fixes, and flush to the OS.

        Series go in batches of at most :data:`SERIES_PER_BATCH` (a rotation re-journals every
        series of the node: one batch would hold all their texts at once).
        """
        pending = iter(series)
        while batch := list(itertools.islice(pending, SERIES_PER_BATCH)):
            self._stream.write_batch(
                _rows(
                    R_SERIES,
                    [0] * len(batch),
                    [s[0] for s in batch],
                    [None] * len(batch),
                    [None] * len(batch),
                    [self._series_text(kind, name, labels) for _, kind, name, labels in batch],
                )
            )
        for frame in frames:
            self._stream.write_batch(_frame_batch(frame, self._gauges, self._counters))
        if fixes:
            self._stream.write_batch(
                _rows(
                    R_FIX,
                    [f[0] for f in fixes],
                    [f[1] for f in fixes],
                    [v if isinstance(v, float) else None for _, _, v in fixes],
                    [v if isinstance(v, int) else None for _, _, v in fixes],
                    [None] * len(fixes),
                )
            )
        self._file.flush()

    def _series_text(self, kind: str, name: str, labels: LabelTuple) -> str:
        # json.dumps([kind, name, list(labels)]), with the labels' JSON made once per label
        # tuple: every series of a container shares one (a rotation re-journals them all).
        cache = self._labels_json
        text = cache.get(labels)
        if text is None:
            if len(cache) >= _LABELS_JSON_CACHE:
                cache.clear()
            text = cache[labels] = json.dumps([list(pair) for pair in labels])
        return f"[{json.dumps(kind)}, {json.dumps(name)}, {text}]"

    def end(self, tick: int) -> None:
        """Record that the file owns only the ticks below ``tick`` and flush (raises OSError)."""
        self._stream.write_batch(_rows(R_END, [tick], [0], [None], [None], [None]))
        self._file.flush()

    def sync(self) -> None:
        """fsync the journal (called at every flush, and after a rotation's carry)."""
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self, delete: bool) -> None:
        """Close the journal; delete it when its file has been published (or it could not be
        begun). Raises OSError when a kept journal's last bytes cannot be written; a deleted
        one's are not needed (on a full disk they cannot be written, and it goes anyway)."""
        try:
            self._stream.close()
        except (OSError, pa.ArrowException):
            pass
        try:
            self._file.close()  # closes the descriptor even when flushing the buffer fails
        except OSError:
            if not delete:
                raise
        if delete:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass


@dataclass(slots=True)
class JournalContents:
    """What a journal held: its header, series and the final points (fixes applied); ``end``:
    the file owns only the ticks below it (None: no limit recorded)."""

    header: dict[str, Any]
    series: dict[int, JournalSeries]
    points: PointColumns
    ticks: list[int]
    complete: bool
    end: int | None = None


class JournalError(Exception):
    """A journal that cannot be read at all (no header)."""


class JournalCutShortError(JournalError):
    """A journal that ends before its header is complete: it holds nothing (no tick is ever
    written before the header)."""


#: Every Arrow IPC message starts with this marker, then its metadata's size (int32).
_CONTINUATION = b"\xff\xff\xff\xff"
#: Bounds of a header's messages, far above what is written (a message's metadata describes the
#: journal's six columns: under 1 KB; a header's body is tens of KB with its descriptions): past
#: them, bytes are damage, not a header cut short.
_MAX_METADATA_BYTES = 8192
_MAX_HEADER_BYTES = 1 << 20


def _u(fmt: str, data: bytes, offset: int) -> int:
    value: int = struct.unpack_from(fmt, data, offset)[0]
    return value


def _message_end(data: bytes, start: int, size: int) -> int | None:
    """The end of the Arrow IPC message at ``start`` of a stream of ``size`` bytes whose first
    bytes are ``data``, or None when the stream ends first. Raises ValueError when these are no
    message's bytes.

    A message is the marker, the metadata's size, the metadata (a flatbuffer ``Message`` whose
    field 3 is the body's length) and the body.
    """
    if size - start < 8:
        if not _CONTINUATION.startswith(data[start : start + 4]):
            raise ValueError("no message marker")
        return None
    if data[start : start + 4] != _CONTINUATION:
        raise ValueError("no message marker")
    meta_size = _u("<i", data, start + 4)
    meta = start + 8
    if not 0 < meta_size <= _MAX_METADATA_BYTES:
        raise ValueError(f"metadata of {meta_size} bytes")
    if meta + meta_size > size:
        return None
    try:
        table = meta + _u("<I", data, meta)
        vtable = table - _u("<i", data, table)
        inside = range(meta, meta + meta_size)
        if table not in inside or vtable not in inside:
            raise ValueError("metadata offsets out of the message")
        body = 0
        if _u("<H", data, vtable) >= 12 and (field := _u("<H", data, vtable + 10)):
            body = _u("<q", data, table + field)
    except struct.error as exc:
        raise ValueError(f"metadata unreadable: {exc}") from None
    if not 0 <= body <= _MAX_HEADER_BYTES:
        raise ValueError(f"body of {body} bytes")
    end = meta + meta_size + body
    return None if end > size else end


def _cut_within_header(f: IO[bytes]) -> bool:
    """Whether the journal ``f`` ends within its first two messages (the schema, the header)
    with only valid bytes up to there: a header cut short, not damage."""
    size = os.fstat(f.fileno()).st_size
    f.seek(0)
    data = f.read(2 * (8 + _MAX_METADATA_BYTES) + _MAX_HEADER_BYTES)
    start = 0
    try:
        for _ in range(2):
            end = _message_end(data, start, size)
            if end is None:
                return True
            start = end
    except ValueError:
        pass
    return False


def read_journal(path: Path) -> JournalContents:
    """Replay the journal at ``path``; a truncated tail is ignored (``complete`` False).

    Raises JournalCutShortError when the journal ends before its header is complete (it holds
    nothing), JournalError when its header cannot be read otherwise (damage), OSError when the
    file cannot be opened.
    """
    # The compute functions only here: a writing process never loads them (their memory).
    import pyarrow.compute as pc  # noqa: PLC0415

    batches: list[pa.RecordBatch] = []
    complete = True
    with open(path, "rb") as f:
        try:
            reader = pa.ipc.open_stream(f)
        except (pa.ArrowInvalid, OSError) as exc:
            if _cut_within_header(f):
                raise JournalCutShortError(f"{path}: ends before its header is complete") from None
            raise JournalError(f"{path}: not a journal ({exc})") from None
        while True:
            try:
                batches.append(reader.read_next_batch())
            except StopIteration:
                break
            except (pa.ArrowInvalid, OSError, EOFError):
                complete = False
                break
        if not batches and _cut_within_header(f):
            raise JournalCutShortError(f"{path}: ends before its header is complete")
    if not batches:
        raise JournalError(f"{path}: journal has no header")
    table = pa.Table.from_batches(batches, JOURNAL_SCHEMA)
    rtype = table["rtype"]
    head = table.filter(pc.equal(rtype, R_HEADER))
    if head.num_rows == 0:
        raise JournalError(f"{path}: journal has no header")
    header = json.loads(head["text"][0].as_py())
    ends = table.filter(pc.equal(rtype, R_END))["tick"].to_pylist()
    series: dict[int, JournalSeries] = {}
    defs = table.filter(pc.equal(rtype, R_SERIES))
    for sid, text in zip(defs["sid"].to_pylist(), defs["text"].to_pylist(), strict=True):
        kind, name, labels = json.loads(text)
        series[sid] = JournalSeries(kind, name, tuple((k, v) for k, v in labels))
    points = _replay_ticks(table)
    ticks = sorted(set(points["tick"].to_pylist()))
    fixes = table.filter(pc.equal(rtype, R_FIX))
    if fixes.num_rows:
        last: dict[tuple[int, int], tuple[float | None, int | None]] = {}
        for tick, sid, fval, ival in zip(
            fixes["tick"].to_pylist(),
            fixes["sid"].to_pylist(),
            fixes["fval"].to_pylist(),
            fixes["ival"].to_pylist(),
            strict=True,
        ):
            last[(tick, sid)] = (fval, ival)
        base = min(ticks) if ticks else 0
        key = pc.add(pc.multiply(pc.subtract(points["tick"], base), 1 << 32), points["sid"])
        fixed_keys = pa.array([((t - base) << 32) + s for t, s in last], pa.int64())
        points = points.filter(pc.invert(pc.is_in(key, value_set=fixed_keys)))
        kept = [
            (t, s, fv, iv) for (t, s), (fv, iv) in last.items() if fv is not None or iv is not None
        ]
        if kept:
            extra = pa.table(
                {
                    "tick": pa.array([k[0] for k in kept], pa.int64()),
                    "sid": pa.array([k[1] for k in kept], pa.int64()),
                    "fval": pa.array([k[2] for k in kept], pa.float64()),
                    "ival": pa.array([k[3] for k in kept], pa.int64()),
                }
            )
            points = pa.concat_tables([points, extra])
    return JournalContents(
        header=header,
        series=series,
        points=PointColumns(
            points["sid"].combine_chunks(),
            points["tick"].combine_chunks(),
            points["ival"].combine_chunks(),
            points["fval"].combine_chunks(),
        ),
        ticks=ticks,
        complete=complete,
        end=min(ends) if ends else None,
    )


def _replay_ticks(table: pa.Table) -> pa.Table:
    """Every tick's full values (tick, sid, fval, ival) from full and delta records."""
    gauges: dict[int, float] = {}
    counters: dict[int, int] = {}
    new_gauges: dict[int, float] = {}
    new_counters: dict[int, int] = {}
    ticks: list[int] = []
    sids: list[int] = []
    fvals: list[float | None] = []
    ivals: list[int | None] = []
    columns = zip(
        table["rtype"].to_pylist(),
        table["tick"].to_pylist(),
        table["sid"].to_pylist(),
        table["fval"].to_pylist(),
        table["ival"].to_pylist(),
        table["text"].to_pylist(),
        strict=True,
    )
    for rtype, tick, sid, fval, ival, text in columns:
        if rtype in (R_GFULL, R_GDELTA):
            new_gauges[sid] = fval
        elif rtype in (R_CFULL, R_CDELTA):
            new_counters[sid] = ival
        elif rtype == R_TICK:
            modes = text or ""
            if "G" in modes:
                gauges = new_gauges
            else:
                gauges.update(new_gauges)
            if "C" in modes:
                counters = new_counters
            else:
                counters.update(new_counters)
            new_gauges, new_counters = {}, {}
            n = len(gauges) + len(counters)
            ticks.extend([tick] * n)
            sids.extend(gauges)
            sids.extend(counters)
            fvals.extend(gauges.values())
            fvals.extend([None] * len(counters))
            ivals.extend([None] * len(gauges))
            ivals.extend(counters.values())
    return pa.table(
        {
            "tick": pa.array(ticks, pa.int64()),
            "sid": pa.array(sids, pa.int64()),
            "fval": pa.array(fvals, pa.float64()),
            "ival": pa.array(ivals, pa.int64()),
        }
    )


def try_lock(path: Path) -> IO[bytes] | None:
    """Open ``path`` and take its lock without waiting; None if a live writer holds it."""
    f = open(path, "rb")  # noqa: SIM115 - returned to the caller
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        return None
    return f

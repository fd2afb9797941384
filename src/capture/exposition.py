"""The Prometheus text exposition of a recorder's live series, rendered at most once per tick.

:class:`Exposition` turns the series of a :class:`capture.CaptureRecorder` into the Prometheus
text format (0.0.4) or OpenMetrics 1.0, plain or gzip-compressed, and keeps the result: every
request between two ticks gets the same bytes, and the first one after a tick renders again.
A render costs little beyond what changed since the previous one:

- each label set's text (sanitized and escaped) is built once, when its first series appears,
  and shared by the series of one container; a line is the family's name, that text and the
  value;
- the values are read from the handles in one pass and compared, in numpy, with those of the
  previous render: only the lines whose value changed are formatted again;
- the lines are kept in chunks (a few dozen lines of one metric family, cut where a line's
  labels say so, so a series that comes or goes moves no other chunk's boundary), and each
  chunk's gzip form is a deflate segment that ends in a full flush and so refers to nothing
  before it: the gzip body is the kept segments end to end (a chunk is compressed again only
  when its text changed), with the CRC and length of the whole.

Which series are exposed is the owner's choice (``include``, a predicate on the metric name), and
so are the labels they are exposed with (``exposed_labels``, from a series' label set; every
label by default).
The values are the handles' live values when the render runs (the last tick's, or already the
next one's for a series the sampler wrote since). A recorder that has never taken a tick (a
program that only uses the live view) is rendered from all its series at every request.

Names follow Prometheus rules (:func:`sanitize_metric_name`); counters get the ``_total``
suffix. A metric's HELP text is its description (:func:`capture.describe`), else a generic
``capture <kind> <name>``; its unit is a ``# UNIT`` line in OpenMetrics when the name ends with
it (``container_memory_usage_bytes``: ``bytes``), as OpenMetrics requires, and is otherwise only
in the description, so that no metric is renamed. Two metrics whose exposed names collide (one
a gauge, one a counter) cannot both be exposed: the one met second is left out, logged once.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Final

import numpy as np

from capture import facade
from capture.descriptions import Description
from capture.handles import Series, SeriesInfo
from capture.keys import LabelTuple
from capture.recorder import CaptureRecorder

log = logging.getLogger("capture")

TEXT_CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE: Final = "application/openmetrics-text; version=1.0.0; charset=utf-8"

#: A chunk ends after a line whose label text's CRC has these low bits all zero (1 in 64 label
#: sets).
_CHUNK_CUT_MASK: Final = 63
#: zlib level of the gzip form: the fastest (the text is very repetitive anyway).
GZIP_LEVEL: Final = 1
# A gzip member's header: deflate, no name, no mtime, unknown OS.
_GZIP_HEADER: Final = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
# An empty final deflate block (fixed Huffman codes): ends the stream of segments.
_FINAL_BLOCK: Final = b"\x03\x00"
_EOF: Final = b"# EOF\n"
#: Label texts kept for series to come (a container's); cleared when there are more.
_MAX_LABEL_TEXTS: Final = 100_000

_INVALID_NAME = re.compile(r"[^a-zA-Z0-9_:]")
_INVALID_LABEL = re.compile(r"[^a-zA-Z0-9_]")
_CURRENT = attrgetter("current")


def sanitize_metric_name(name: str) -> str:
    """``name`` with every character outside ``[a-zA-Z0-9_:]`` replaced by ``_``."""
    clean = _INVALID_NAME.sub("_", name)
    return clean if not clean[:1].isdigit() else f"_{clean}"


def sanitize_label_name(name: str) -> str:
    """``name`` with every character outside ``[a-zA-Z0-9_]`` replaced by ``_``."""
    clean = _INVALID_LABEL.sub("_", name)
    if clean[:1].isdigit():
        clean = f"_{clean}"
    return f"x{clean}" if clean.startswith("__") else clean


def exposed_sample_name(kind: str, name: str) -> str:
    """The name metric ``name`` of ``kind`` has on the exposition's sample lines: sanitized, and a
    counter's with the ``_total`` suffix."""
    clean = sanitize_metric_name(name)
    if kind == "counter":
        return f"{clean.removesuffix('_total') or clean}_total"
    return clean


def help_and_unit(kind: str, name: str, description: Description | None) -> tuple[str, str]:
    """The HELP text and the OpenMetrics unit ('' for none) of metric ``name`` of ``kind``."""
    if description is None:
        return f"capture {kind} {name}", ""
    unit = sanitize_label_name(description.unit) if description.unit else ""
    # A unit the name does not end with would have to be appended: that would rename the metric.
    if unit and not sanitize_metric_name(name).endswith(f"_{unit}"):
        unit = ""
    return description.description, unit


def _valid_text(text: str) -> str:
    """``text`` that encodes to UTF-8 (a lone surrogate, from undecodable bytes, becomes ?)."""
    if text.isascii():
        return text
    return text.encode("utf-8", "replace").decode("utf-8")


def escape_label_value(value: str) -> str:
    """A label value escaped for both text formats (backslash, double quote, newline)."""
    return _valid_text(value).replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def gauge_text(value: float) -> str:
    """A gauge value as the formats write it: ``repr`` of the float, ``+Inf``/``-Inf``/``NaN``."""
    text = repr(value)
    if "n" in text:  # only inf, -inf and nan hold an n
        if math.isnan(value):
            return "NaN"
        return "+Inf" if value > 0 else "-Inf"
    return text


@dataclass(frozen=True, slots=True)
class _Name:
    """How one metric (kind and name) is exposed."""

    family: str  # the OpenMetrics family name (a counter's without _total)
    sample: str  # the name on each sample line (a counter's with _total)
    kind: str


class _Labels:
    """The text of one label set on a sample line (``{a="x",b="y"} ``, shared by the series of
    one container) and whether a chunk ends after its lines."""

    __slots__ = ("cut", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.cut = zlib.crc32(text.encode("utf-8")) & _CHUNK_CUT_MASK == 0


class _Line:
    """One exposed series: its handle, its labels, and the value text last rendered."""

    __slots__ = ("handle", "labels", "shown", "text")

    def __init__(self, handle: SeriesInfo, labels: _Labels) -> None:
        self.handle = handle
        self.labels = labels
        self.text = ""
        self.shown: float | int | None = None


@dataclass(slots=True)
class _Family:
    """One exposed metric family: its header lines and its series, by id, in order."""

    name: _Name
    text_header: bytes
    om_header: bytes
    members: dict[int, _Line] = field(default_factory=dict)
    #: Indexes of the family's chunks in the current layout.
    chunks: range = range(0)


class _Layout:
    """The lines of the exposed series in output order, and what was rendered of them.

    Built when the set of series changes (from the families' members); its values and chunks
    are brought up to date at each render (:meth:`update`).
    """

    def __init__(self, families: list[_Family], segments: dict[bytes, bytes]) -> None:
        self.families = families
        lines = [line for family in families for line in family.members.values()]
        self.lines = lines
        sizes = [len(family.members) for family in families]
        #: Each line's start (its sample name and label text), and each line in full: the start
        #: and the value text last rendered (a chunk is its lines joined).
        self.starts = [
            family.name.sample + line.labels.text
            for family in families
            for line in family.members.values()
        ]
        self.full = [start + line.text for start, line in zip(self.starts, lines, strict=True)]
        is_gauge = np.repeat([family.name.kind == "gauge" for family in families], sizes)
        self.gauge_lines = np.flatnonzero(is_gauge)
        self.counter_lines = np.flatnonzero(~is_gauge)
        self.gauges = [lines[i].handle for i in self.gauge_lines.tolist()]
        self.counters = [lines[i].handle for i in self.counter_lines.tolist()]
        self.shown_gauges = np.array(
            [_shown_float(lines[i].shown) for i in self.gauge_lines.tolist()], dtype=np.float64
        )
        self.shown_counters = np.array(
            [_shown_int(lines[i].shown) for i in self.counter_lines.tolist()], dtype=np.int64
        )
        # A chunk starts at each family's first line and after each line that cuts.
        starts = np.zeros(len(lines), dtype=bool)
        if lines:
            starts[1:] = np.fromiter((line.labels.cut for line in lines), bool, len(lines))[:-1]
            firsts = np.cumsum([0, *sizes[:-1]])
            starts[firsts[np.array(sizes) > 0]] = True
        self.chunk_of_line = np.cumsum(starts) - 1
        bounds = np.flatnonzero(starts).tolist()
        self.chunk_bounds = list(zip(bounds, [*bounds[1:], len(lines)], strict=True))
        position = 0
        for family, size in zip(families, sizes, strict=True):
            first = int(self.chunk_of_line[position])
            family.chunks = range(first, int(self.chunk_of_line[position + size - 1]) + 1)
            position += size
        self.chunk_text: list[bytes] = [b""] * len(self.chunk_bounds)
        self.chunk_gzip: list[bytes | None] = [None] * len(self.chunk_bounds)
        self._fresh = True
        # Segments of the layout this one replaces, by chunk text (chunks that did not change).
        self._segments = segments

    def segments(self) -> dict[bytes, bytes]:
        """The gzip segments kept, by chunk text (for the layout that replaces this one)."""
        return {
            text: segment
            for text, segment in zip(self.chunk_text, self.chunk_gzip, strict=True)
            if segment is not None
        }

    def store(self) -> None:
        """Keep the rendered value texts in the lines (for the layout that replaces this one)."""
        lines = self.lines
        for line, start, full in zip(lines, self.starts, self.full, strict=True):
            line.text = full[len(start) :]
        for i, value in zip(self.gauge_lines.tolist(), self.shown_gauges.tolist(), strict=True):
            lines[i].shown = value
        for i, count in zip(self.counter_lines.tolist(), self.shown_counters.tolist(), strict=True):
            lines[i].shown = count

    def update(self) -> int:
        """Read every value, format the changed ones, rebuild the chunks they are in; returns
        how many values were formatted."""
        gauges = list(map(_CURRENT, self.gauges))
        counters = list(map(_CURRENT, self.counters))
        try:
            now_g = np.array(gauges, dtype=np.float64)
        except (TypeError, ValueError):  # not a float: never from a gauge's handle
            gauges = [_as_float(v) for v in gauges]
            now_g = np.array(gauges, dtype=np.float64)
        # (NaN never equals itself: a NaN line is formatted again, to the same text.)
        changed_g = np.flatnonzero(now_g != self.shown_gauges)
        try:
            now_c = np.array(counters, dtype=np.int64)
            changed_c = np.flatnonzero(now_c != self.shown_counters)
        except (TypeError, ValueError, OverflowError):  # beyond int64: every one again
            now_c = np.full(len(counters), -1, dtype=np.int64)
            changed_c = np.arange(len(counters))
        full, starts = self.full, self.starts
        gauge_lines, counter_lines = self.gauge_lines, self.counter_lines
        # Formatted from the array's Python floats: a numpy scalar written to a gauge has a
        # repr of its own ("np.float64(1.5)").
        gauges = now_g.tolist()
        # A finite value's text is its repr (the shortest that reads back); inf and NaN are
        # spelled as the formats want (gauge_text).
        finite = np.isfinite(now_g[changed_g])
        plain, special = changed_g[finite], changed_g[~finite]
        for j, i in zip(plain.tolist(), gauge_lines[plain].tolist(), strict=True):
            full[i] = f"{starts[i]}{gauges[j]!r}\n"
        for j, i in zip(special.tolist(), gauge_lines[special].tolist(), strict=True):
            full[i] = f"{starts[i]}{gauge_text(gauges[j])}\n"
        for j, i in zip(changed_c.tolist(), counter_lines[changed_c].tolist(), strict=True):
            full[i] = f"{starts[i]}{counters[j]}\n"
        self.shown_gauges, self.shown_counters = now_g, now_c
        dirty: Sequence[int]
        if self._fresh:
            dirty = range(len(self.chunk_bounds))
            self._fresh = False
        else:
            marked = np.zeros(len(self.chunk_bounds), dtype=bool)
            marked[self.chunk_of_line[gauge_lines[changed_g]]] = True
            marked[self.chunk_of_line[counter_lines[changed_c]]] = True
            dirty = np.flatnonzero(marked).tolist()
        segments = self._segments
        for c in dirty:
            start, end = self.chunk_bounds[c]
            data = "".join(full[start:end]).encode("utf-8")
            self.chunk_text[c] = data
            # (Looked up only after a relayout: hashing a chunk's bytes costs as much as a copy.)
            self.chunk_gzip[c] = segments.get(data) if segments else None
        self._segments = {}
        return len(changed_g) + len(changed_c)

    def pieces(self, openmetrics: bool) -> list[bytes]:
        """The body's parts in order: each family's header and chunks (and # EOF)."""
        out: list[bytes] = []
        for family in self.families:
            out.append(family.om_header if openmetrics else family.text_header)
            out.extend(self.chunk_text[c] for c in family.chunks)
        if openmetrics:
            out.append(_EOF)
        return out

    def gzip_pieces(
        self, openmetrics: bool, compress: Callable[[bytes], bytes], headers: dict[bytes, bytes]
    ) -> list[bytes]:
        """The deflate segments of :meth:`pieces`, compressing what is not kept yet."""
        out: list[bytes] = []
        for family in self.families:
            out.append(
                _kept_segment(
                    family.om_header if openmetrics else family.text_header, compress, headers
                )
            )
            for c in family.chunks:
                kept = self.chunk_gzip[c]
                if kept is None:
                    kept = self.chunk_gzip[c] = compress(self.chunk_text[c])
                out.append(kept)
        if openmetrics:
            out.append(_kept_segment(_EOF, compress, headers))
        return out


def _kept_segment(
    data: bytes, compress: Callable[[bytes], bytes], kept: dict[bytes, bytes]
) -> bytes:
    segment = kept.get(data)
    if segment is None:
        segment = kept[data] = compress(data)
    return segment


def _shown_float(value: float | int | None) -> float:
    return math.nan if value is None else float(value)


def _shown_int(value: float | int | None) -> int:
    return -1 if value is None else int(value)


def _as_float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return math.nan


def _segment_compressor() -> Callable[[bytes], bytes]:
    """A function that compresses data into a raw deflate segment ending in a full flush (no
    reference to anything before it: segments concatenate into one valid stream)."""
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)

    def compress(data: bytes) -> bytes:
        return compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH)

    return compress


def gzip_member(segments: Sequence[bytes], plain: Sequence[bytes]) -> bytes:
    """One gzip member made of deflate ``segments`` (each ending in a full flush) whose
    uncompressed text is ``plain`` (its pieces, for the CRC and length)."""
    crc = 0
    size = 0
    for piece in plain:
        crc = zlib.crc32(piece, crc)
        size += len(piece)
    trailer = crc.to_bytes(4, "little") + (size & 0xFFFFFFFF).to_bytes(4, "little")
    return b"".join((_GZIP_HEADER, *segments, _FINAL_BLOCK, trailer))


class Exposition:
    """The exposition of ``recorder`` (default: the one installed when a request comes).

    ``include(name)`` says whether metric ``name`` is exposed (default: all); it is asked once
    per name. ``exposed_labels(labels)`` gives the labels a series of label set ``labels`` is
    exposed with (default: all of them); it is asked once per label set, and must keep two live
    label sets apart (dropping only labels that others determine, say). :meth:`body` is
    thread-safe: concurrent requests wait for one render and get its bytes.
    """

    def __init__(
        self,
        recorder: CaptureRecorder | None = None,
        include: Callable[[str], bool] | None = None,
        exposed_labels: Callable[[LabelTuple], LabelTuple] | None = None,
    ) -> None:
        self._recorder = recorder
        self._include = include
        self._exposed_labels = exposed_labels
        self._lock = threading.Lock()
        self._refused: set[str] = set()
        #: Renders done, and value texts formatted by them (test and benchmark aids).
        self.renders = 0
        self.formatted = 0
        self._forget(None)

    def _forget(self, recorder: CaptureRecorder | None) -> None:
        """Start over for ``recorder`` (series ids of another recorder mean nothing here)."""
        self._of: CaptureRecorder | None = recorder
        self._families: dict[str, _Family] = {}
        self._samples: dict[str, str] = {}  # sample name -> family name
        self._family_of: dict[tuple[str, str], _Family | None] = {}
        self._label_texts: dict[LabelTuple, _Labels] = {}
        self._headers_gzip: dict[bytes, bytes] = {}
        self._generation: int | None = None
        self._layout: _Layout | None = None
        # The gzip segments of the layout being replaced, by chunk text.
        self._segments: dict[bytes, bytes] = {}
        self._tick: int | None = None
        self._bodies: dict[tuple[bool, bool], bytes] = {}

    def _current(self) -> CaptureRecorder | None:
        if self._recorder is not None:
            return self._recorder
        installed = facade.get_recorder()
        return installed if isinstance(installed, CaptureRecorder) else None

    def body(self, openmetrics: bool = False, gzip: bool = False) -> bytes:
        """The exposition in the text format (or OpenMetrics), gzip-compressed if asked.

        Rendered at most once per tick of the recorder (at every call for a recorder that has
        taken no tick), the same bytes until the next. Empty (OpenMetrics: ``# EOF``) when no
        CaptureRecorder is installed.
        """
        with self._lock:
            self._refresh()
            key = (openmetrics, gzip)
            body = self._bodies.get(key)
            if body is None:
                body = self._bodies[key] = self._assemble(openmetrics, gzip)
            return body

    def _refresh(self) -> None:
        recorder = self._current()
        if recorder is not self._of:
            self._forget(recorder)
        if recorder is None:
            return
        tick = recorder.last_taken
        if tick is None:  # no ticks to cache on: every series as it is now
            self._resync(recorder, recorder.live_handles())
            self._generation = None
        elif tick == self._tick and self._generation is not None:
            return  # this tick's render is kept
        elif self._generation != recorder.live_generation:
            changes = None if self._generation is None else recorder.live_changes(self._generation)
            if changes is None:
                generation, gauges, counters = recorder.live_series()
                self._resync(recorder, [*gauges, *counters])
            else:
                generation, came, gone = changes
                self._apply(recorder, came, gone)
            self._generation = generation
        layout = self._layout
        if layout is None:
            layout = self._layout = self._lay_out()
        self.formatted += layout.update()
        self._tick = tick
        self._bodies = {}
        self.renders += 1

    # ------------------------------------------------------------------ series and families
    def _resync(self, recorder: CaptureRecorder, handles: Sequence[SeriesInfo]) -> None:
        """Make the families hold exactly ``handles`` (keeping what is known of each)."""
        old = {
            sid: line for family in self._families.values() for sid, line in family.members.items()
        }
        for family in self._families.values():
            family.members = {}
        for handle in handles:
            line = old.get(handle.sid)
            if line is not None and line.handle is handle:
                owner = self._family_of[(handle.kind, handle.name)]
                assert owner is not None
                owner.members[handle.sid] = line
            else:
                self._add(recorder, handle)
        self._relayout()

    def _apply(
        self, recorder: CaptureRecorder, came: Sequence[SeriesInfo], gone: Sequence[Series]
    ) -> None:
        """Apply the changes :meth:`CaptureRecorder.live_changes` reported."""
        if not came and not gone:
            return
        for handle in gone:
            family = self._family_of.get((handle.kind, handle.name))
            if family is not None:
                line = family.members.get(handle.sid)
                if line is not None and line.handle is handle:
                    del family.members[handle.sid]
        for handle in came:
            if not handle.removed:
                self._add(recorder, handle)
        self._relayout()

    def _add(self, recorder: CaptureRecorder, handle: SeriesInfo) -> None:
        key = (handle.kind, handle.name)
        try:
            family = self._family_of[key]
        except KeyError:
            family = self._family_of[key] = self._new_family(recorder, handle.kind, handle.name)
        if family is not None:
            family.members[handle.sid] = _Line(handle, self._labels(recorder, handle.labels))

    def _relayout(self) -> None:
        """The series changed: a new layout at the next render (it keeps what it can)."""
        if self._layout is not None:
            self._layout.store()
            self._segments = self._layout.segments()
            self._layout = None

    def _lay_out(self) -> _Layout:
        families = [f for _, f in sorted(self._families.items()) if f.members]
        segments, self._segments = self._segments, {}
        return _Layout(families, segments)

    def _labels(self, recorder: CaptureRecorder, labels: LabelTuple) -> _Labels:
        known = self._label_texts.get(labels)
        if known is None:
            if len(self._label_texts) > _MAX_LABEL_TEXTS:
                self._label_texts.clear()  # (label sets of series long gone)
            merged = {sanitize_label_name(k): v for k, v in recorder.global_labels}
            shown = labels if self._exposed_labels is None else self._exposed_labels(labels)
            merged.update((sanitize_label_name(k), v) for k, v in shown)
            pairs = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in sorted(merged.items()))
            known = self._label_texts[labels] = _Labels(f"{{{pairs}}} " if pairs else " ")
        return known

    def _new_family(self, recorder: CaptureRecorder, kind: str, name: str) -> _Family | None:
        """The family series of metric ``name`` join (created), None when they are not exposed
        (excluded, or their exposed name is another metric's)."""
        if self._include is not None and not self._include(name):
            return None
        sample = exposed_sample_name(kind, name)
        family_name = sample.removesuffix("_total") if kind == "counter" else sample
        exposed = _Name(family_name, sample, kind)
        family = self._families.get(exposed.family)
        if family is not None and family.name == exposed:
            return family  # another name that sanitizes to the same (x.y and x_y)
        owner = self._samples.get(exposed.sample)
        if family is not None or (owner is not None and owner != exposed.family):
            if name not in self._refused:
                self._refused.add(name)
                log.warning(
                    "capture: %s %r is exposed as %s, which another metric already is: left "
                    "out of the live view",
                    kind,
                    name,
                    exposed.sample,
                )
            return None
        text_header, om_header = _headers(exposed, name, recorder.description(name))
        family = self._families[exposed.family] = _Family(exposed, text_header, om_header)
        self._samples[exposed.sample] = exposed.family
        return family

    # ------------------------------------------------------------------ bodies
    def _assemble(self, openmetrics: bool, gzip: bool) -> bytes:
        layout = self._layout
        plain = (
            layout.pieces(openmetrics) if layout is not None else ([_EOF] if openmetrics else [])
        )
        if not gzip:
            return b"".join(plain)
        compress = _segment_compressor()
        if layout is None:
            segments = [compress(piece) for piece in plain]
        else:
            segments = layout.gzip_pieces(openmetrics, compress, self._headers_gzip)
        kept = self._bodies.get((openmetrics, False))
        return gzip_member(segments, [kept] if kept is not None else plain)


def _headers(exposed: _Name, name: str, description: Description | None) -> tuple[bytes, bytes]:
    """The HELP/TYPE (and OpenMetrics UNIT) lines of a family, in both formats."""
    doc, unit = help_and_unit(exposed.kind, name, description)
    text_doc = _valid_text(doc).replace("\\", r"\\").replace("\n", r"\n")
    om_doc = text_doc.replace('"', r"\"")
    text = f"# HELP {exposed.sample} {text_doc}\n# TYPE {exposed.sample} {exposed.kind}\n"
    om = f"# HELP {exposed.family} {om_doc}\n# TYPE {exposed.family} {exposed.kind}\n"
    if unit:
        om += f"# UNIT {exposed.family} {unit}\n"
    return text.encode("utf-8"), om.encode("utf-8")

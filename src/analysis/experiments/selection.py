"""What ``--baseline``, ``--comparison`` and ``--run`` select.

A selector is one of:

- a run id, or a prefix of one (``3f9a2c``) that names one run of the dataset;
- ``variant=NAME``: every run whose manifest says ``--variant NAME``;
- ``FROM..TO``: every tick from FROM up to (not including) TO, ISO 8601 (``2026-12-07T12:00``,
  ``2026-12-07T12:00:30Z``; UTC when no offset is given); either side may be left out.

A selector that selects nothing is an error (one line) that says what there is instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from analysis.errors import AnalysisError
from analysis.experiments.runs import RunManifest

#: How many run ids or variants an error lists at most.
_LISTED = 8


@dataclass(frozen=True, slots=True)
class Selection:
    """What a selector chose: the runs (None: every run) and the time range (None: open)."""

    text: str
    run_ids: tuple[str, ...] | None
    start: datetime | None
    end: datetime | None


def _moment(text: str, selector: str) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise AnalysisError(
            f"{selector!r}: {text!r} is not an ISO 8601 time (e.g. 2026-12-07T12:00:00Z)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _listed(names: Sequence[str]) -> str:
    more = f" and {len(names) - _LISTED} more" if len(names) > _LISTED else ""
    return ", ".join(names[:_LISTED]) + more if names else "none"


def select(
    selector: str, run_ids: Sequence[str], manifests: Mapping[str, RunManifest]
) -> Selection:
    """Resolve ``selector`` against the dataset's runs (``run_ids``, oldest first) and their
    ``manifests``. Raises :class:`AnalysisError` for a selector that selects nothing."""
    text = selector.strip()
    if ".." in text:
        start_text, _, end_text = text.partition("..")
        start, end = _moment(start_text.strip(), text), _moment(end_text.strip(), text)
        if start is not None and end is not None and end <= start:
            raise AnalysisError(f"{text!r}: the range ends before it starts")
        return Selection(text, None, start, end)
    if text.startswith("variant="):
        variant = text.removeprefix("variant=").strip()
        chosen = tuple(r for r in run_ids if r in manifests and manifests[r].variant == variant)
        if not chosen:
            recorded = {m.variant for r, m in manifests.items() if m.variant and r in run_ids}
            variants = sorted(recorded)
            raise AnalysisError(
                f"{text!r}: no run of variant {variant!r} (variants recorded: {_listed(variants)})"
            )
        return Selection(text, chosen, None, None)
    if not text:
        raise AnalysisError("an empty selector: give a run id, variant=NAME or FROM..TO")
    chosen = tuple(r for r in run_ids if r.startswith(text.lower()))
    if len(chosen) == 1:
        return Selection(text, chosen, None, None)
    if not chosen:
        raise AnalysisError(f"{text!r}: no run id starts so (runs: {_listed(list(run_ids))})")
    raise AnalysisError(f"{text!r}: names {len(chosen)} runs ({_listed(list(chosen))}): say more")

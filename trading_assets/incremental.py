"""Incremental refresh of the data assets: compute only the bars that changed, splice them onto the previous
output, and prove now and then that the result is what a full computation gives.

Every data frame carries a :class:`Lineage` in ``DataFrame.attrs["lineage"]``: its token, the token of the
input frame it was computed from, and when it extends its previous output, that output's token and the first
row that may differ from it (``changed_from``). An asset extends its previous output only when that output
was computed from the very input its new input extends (``previous.input == input.base``); then it recomputes
the rows from ``changed_from`` on, reading the warm-up (and lead-in) the rows need before it, and keeps the
previous rows before it. This is sound because every row is start-invariant: it depends on the history before
it only within the warm-up tolerance (trading_assets.indicators.warmup_bars) and anchored columns are moved
to the new first row (see :func:`trading_assets.indicators.extend_indicators`).

:func:`differences` is the comparison with a full computation the data assets' ``incremental_matches_full``
checks make, over every row, every ``verify_every`` incremental refresh.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd

LINEAGE = "lineage"


@dataclass(frozen=True)
class Lineage:
    """Which frame this is, what it was computed from, and what it extends."""

    token: str
    input: str | None = None  # the input frame's token
    base: str | None = None  # the previous output this frame extends; None: computed in full
    changed_from: str | None = None  # ISO 8601: the first row that may differ from ``base`` (new rows included)
    depth: int = 0  # incremental refreshes since the last full computation
    rows: int | None = None  # rows of the frame it was attached to: a stored frame that lost rows is not extended

    @classmethod
    def of(cls, frame: pd.DataFrame | None) -> Lineage | None:
        values = None if frame is None else frame.attrs.get(LINEAGE)
        return cls(**values) if isinstance(values, dict) else None

    @classmethod
    def full(cls, input_token: str | None = None, token: str | None = None) -> Lineage:
        return cls(token or uuid.uuid4().hex, input_token)

    def extended_by(self, input_token: str | None, changed_from: pd.Timestamp, token: str | None = None) -> Lineage:
        """The lineage of a frame that extends this one from ``changed_from`` on."""
        return Lineage(token or uuid.uuid4().hex, input_token, self.token, changed_from.isoformat(), self.depth + 1)

    def but(self, **changes) -> Lineage:
        return replace(self, **changes)

    def attach(self, frame: pd.DataFrame) -> pd.DataFrame:
        frame.attrs[LINEAGE] = {**asdict(self), "rows": len(frame)}
        return frame

    @classmethod
    def whole(cls, frame: pd.DataFrame | None) -> Lineage | None:
        """The lineage of ``frame`` if it still has the rows it was attached with, else None."""
        lineage = cls.of(frame)
        return lineage if lineage is not None and lineage.rows == len(frame) else None

    @property
    def incremental(self) -> bool:
        return self.base is not None

    def verification_due(self, every: int) -> bool:
        """Whether this refresh is compared with a full computation: every ``every``-th incremental one."""
        return self.incremental and self.depth % every == 0


def resume_point(previous: pd.DataFrame | None, input_frame: pd.DataFrame, keep_from: pd.Timestamp | None):
    """The first row to compute again when ``previous`` (this asset's last output) can be extended, else None.

    Extensible when ``previous`` was computed from the frame ``input_frame`` extends, both still hold the rows
    their lineage was attached with, and it covers
    ``keep_from`` (the new first row; a window that grows backwards is computed in full). The point is the
    input's ``changed_from``, or ``previous``' last row if that comes first (rows ``previous`` could not
    have yet, such as the last ones whose label had not ended).
    """
    mine, theirs = Lineage.whole(previous), Lineage.whole(input_frame)  # frames that lost rows: compute all
    if previous is None or previous.empty or mine is None or theirs is None or theirs.changed_from is None:
        return None
    if theirs.base is None or mine.input != theirs.base:
        return None
    if keep_from is not None and keep_from < previous.index[0]:
        return None
    return min(pd.Timestamp(theirs.changed_from), previous.index[-1])


def splice(previous: pd.DataFrame, tail: pd.DataFrame, keep_from: pd.Timestamp | None, resume: pd.Timestamp):
    """``previous``' rows in ``[keep_from, resume)`` followed by ``tail``'s rows from ``resume`` on (the columns
    of ``tail``; attrs empty: the caller attaches them)."""
    lo = 0 if keep_from is None else int(previous.index.searchsorted(keep_from))
    head = previous.iloc[lo : int(previous.index.searchsorted(resume))]  # slices: no copy until the concat
    if not head.columns.equals(tail.columns):
        head = head[tail.columns]
    frame = pd.concat([head, tail.iloc[int(tail.index.searchsorted(resume)) :]])
    frame.attrs = {}
    return frame


def input_rows_from(index: pd.DatetimeIndex, resume: pd.Timestamp, history_rows: int) -> int:
    """Position of the first input row a recomputation from ``resume`` reads: ``history_rows`` before it."""
    return max(int(index.searchsorted(resume)) - history_rows, 0)


def differences(incremental: pd.DataFrame, full: pd.DataFrame, since: pd.Timestamp, tolerance: float) -> dict:
    """What differs between the incremental and the full frame from ``since`` on, beyond ``tolerance``
    (relative to each column's largest magnitude; 0: bit for bit). Empty when they agree.

    Rows present in one frame only are reported as ``rows``; a column as its largest scaled difference.
    """
    a, b = incremental.loc[incremental.index >= since], full.loc[full.index >= since]
    found: dict[str, object] = {}
    if not a.index.equals(b.index):
        only = a.index.symmetric_difference(b.index)
        found["rows"] = f"{len(only)} row(s) in one frame only, e.g. {[t.isoformat() for t in only[:3]]}"
        common = a.index.intersection(b.index)
        a, b = a.loc[common], b.loc[common]
    if list(a.columns) != list(b.columns):
        found["columns"] = sorted(set(a.columns) ^ set(b.columns)) or "order"
    for column in a.columns.intersection(b.columns):
        x, y = a[column].to_numpy(dtype="float64"), b[column].to_numpy(dtype="float64")
        nan = np.isnan(x) != np.isnan(y)
        scale = float(np.nanmax(np.abs(y))) if np.isfinite(y).any() else 0.0
        gap = np.abs(np.nan_to_num(x - y)) / (scale or 1.0)
        if nan.any() or (gap > tolerance).any():
            found[column] = "NaN in one frame only" if nan.any() else round(float(gap.max()), 12)
    return found


def pack_mask(mask: np.ndarray) -> str:
    """A boolean mask as a compact string for attrs (base64 of its bits): pandas deep-copies attrs on every
    operation, and a string is copied for free."""
    return base64.b64encode(np.packbits(np.asarray(mask, dtype=bool)).tobytes()).decode()


def unpack_mask(packed: str, length: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(base64.b64decode(packed), dtype=np.uint8), count=length).astype(bool)

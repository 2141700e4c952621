"""One reader's sequence check: every event must be the previous seq + 1.

A reader starts from a snapshot (its seq and epoch) and from then on, across resumes with
`since` and `epoch`, expects exactly seq + 1. A higher seq is a gap (its missing range is kept
as a hole), a seq that fills a hole arrived out of order, any other lower one is a duplicate. A
snapshot on resume is allowed (history may no longer reach back) but may not go back in time
within the same epoch; a snapshot with a new epoch starts the count afresh.

The checker is pure bookkeeping, called once per event, so it is cheap and testable alone.
"""

from __future__ import annotations

OK = 0
GAP = 1
DUPLICATE = 2
REORDERED = 3
NOT_STARTED = 4


class SequenceChecker:
    """The seq position of one simulated reader, kept across its connections."""

    __slots__ = ("duplicates", "epoch", "epoch_changes", "gaps", "holes", "last", "regressions", "reordered",
                 "resume_snapshots", "start")

    def __init__(self) -> None:
        self.last = -1
        self.start = -1
        self.epoch: str | None = None
        self.holes: list[tuple[int, int]] = []
        self.gaps = 0
        self.duplicates = 0
        self.reordered = 0
        self.regressions = 0
        self.resume_snapshots = 0
        self.epoch_changes = 0

    @property
    def started(self) -> bool:
        return self.epoch is not None

    def snapshot(self, seq: int, epoch: str) -> int:
        """A snapshot current at *seq* in *epoch*: the first message, or a resume history could not serve."""
        if self.epoch is None:
            self.start = seq
        elif epoch != self.epoch:
            self.epoch_changes += 1
            self.holes.clear()
        else:
            self.resume_snapshots += 1
            if seq < self.last:
                self.regressions += 1
                return REORDERED
        self.epoch = epoch
        self.last = seq
        return OK

    def event(self, seq: int) -> int:
        """An event with *seq*: OK, GAP, DUPLICATE, REORDERED, or NOT_STARTED before any snapshot."""
        last = self.last
        if seq == last + 1 and self.epoch is not None:
            self.last = seq
            return OK
        if self.epoch is None:
            return NOT_STARTED
        if seq > last:
            self.holes.append((last + 1, seq - 1))
            self.gaps += 1
            self.last = seq
            return GAP
        for index, (low, high) in enumerate(self.holes):
            if low <= seq <= high:
                replacement = [(a, b) for a, b in ((low, seq - 1), (seq + 1, high)) if a <= b]
                self.holes[index:index + 1] = replacement
                self.reordered += 1
                return REORDERED
        self.duplicates += 1
        return DUPLICATE

    def missing(self) -> int:
        """How many seqs are still missing (holes not filled later)."""
        return sum(high - low + 1 for low, high in self.holes)

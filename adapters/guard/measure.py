"""How well a guard separates flagged from clear prompts: ROC points, AUC, recall at a false-flag
rate, and the threshold that keeps false flags under a target. Pure NumPy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TARGET_FALSE_FLAGS = 0.03
"""The false-flag rate a guard's threshold is chosen for."""


@dataclass(frozen=True)
class RocPoint:
    """One threshold: the share of flagged prompts caught and of clear prompts flagged."""

    threshold: float
    recall: float
    false_flags: float


def roc(scores: np.ndarray, flagged: np.ndarray, thresholds: list[float]) -> list[RocPoint]:
    """Recall and false-flag rate at each threshold (flag when score >= threshold)."""
    pos, neg = scores[flagged], scores[~flagged]
    return [
        RocPoint(
            t,
            float((pos >= t).mean()) if len(pos) else float("nan"),
            float((neg >= t).mean()) if len(neg) else float("nan"),
        )
        for t in thresholds
    ]


def auc(scores: np.ndarray, flagged: np.ndarray) -> float:
    """Area under the ROC curve: P(a flagged prompt outscores a clear one), ties half."""
    pos, neg = scores[flagged], scores[~flagged]
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * ties)


def threshold_for(
    scores: np.ndarray, flagged: np.ndarray, false_flags: float = TARGET_FALSE_FLAGS
) -> float:
    """The lowest threshold whose false-flag rate on clear prompts is at most `false_flags`."""
    neg = np.sort(scores[~flagged])[::-1]
    if not len(neg):
        return 0.5
    allowed = int(np.floor(false_flags * len(neg)))
    # Flagging needs score >= t: put t just above the (allowed+1)-th highest clear score.
    if allowed >= len(neg):
        return float(min(scores.min(), 0.5))
    return float(np.nextafter(neg[allowed], np.inf))


def recall_at(
    scores: np.ndarray, flagged: np.ndarray, false_flags: float = TARGET_FALSE_FLAGS
) -> float:
    """Recall at the threshold `threshold_for` picks."""
    t = threshold_for(scores, flagged, false_flags)
    pos = scores[flagged]
    return float((pos >= t).mean()) if len(pos) else float("nan")

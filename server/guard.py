"""The persona guard at serve time: find a model's trained guard, score text, decide the action.

A persona's guard is `guard.json` in its adapter folder (written by `persona train PERSONA
--method guard`), else the one shipped with the sample adapters; `persona-guard` is the general
guard. A guard is reloaded when its manifest changes on disk, and one made for another base
model is refused (the previous one keeps serving). Scoring asks the engine thread for pooled
base-model hidden states (batched with whatever else is waiting) and applies the probe here.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from adapters.guard.probe import MANIFEST, GuardError, GuardManifest, Probe, feature_reads, load
from adapters.sample_adapters import sample_dir
from data.card import PersonaCard
from data.guard import GuardCard
from data.tokens import user_turn_ids

if TYPE_CHECKING:
    from server.engine.engine import Engine
    from server.metrics import ServerMetrics

log = logging.getLogger("persona.guard")


@dataclass(frozen=True)
class LoadedGuard:
    """A guard in memory."""

    manifest: GuardManifest
    probe: Probe
    path: Path
    stamp: tuple[int, int]
    """(mtime_ns, size) of the manifest it was read from."""


@dataclass(frozen=True)
class Score:
    """What the guard says about one text."""

    category: str | None
    """The most likely flagged category, or None when the text is clear."""
    score: float
    """P(flagged), 0 to 1."""
    scores: dict[str, float]
    """P(category) for every category."""
    flagged: bool


class Guards:
    """Every guard this server uses, loaded on demand and reloaded when republished."""

    def __init__(
        self,
        adapters: Path,
        metrics: ServerMetrics,
        *,
        enabled: bool = True,
        log_text: bool = False,
        samples: Path | None = None,
    ) -> None:
        self.adapters = adapters
        self.metrics = metrics
        self.enabled = enabled
        """False only by the operator's `--no-guard`; no request can change it."""
        self.log_text = log_text
        """Log the user's text with each decision (off by default)."""
        self.samples = samples if samples is not None else sample_dir()
        self._loaded: dict[str, LoadedGuard] = {}
        self.errors: dict[str, str] = {}
        """Why a guard could not be used, per name."""

    def paths(self, name: str) -> list[Path]:
        """Where a guard named `name` may live, preferred first."""
        return [self.adapters / name / MANIFEST, self.samples / name / MANIFEST]

    def get(self, name: str, engine: Engine) -> LoadedGuard | None:
        """The newest usable guard for a persona (or `persona-guard`) on the engine's base model,
        or None."""
        base_hash = engine.base_hash
        for path in self.paths(name):
            try:
                stat = path.stat()
            except OSError:
                continue
            stamp = (stat.st_mtime_ns, stat.st_size)
            held = self._loaded.get(name)
            if held is not None and held.path == path and held.stamp == stamp:
                return held
            try:
                manifest, probe = load(path, engine.hidden_size)
                if manifest.base_hash != base_hash:
                    raise GuardError(
                        f"{path}: trained on base {manifest.base_hash[:12]}, this server runs "
                        f"{base_hash[:12]}; retrain with `persona train {name} --method guard`"
                    )
            except GuardError as exc:
                if self.errors.get(name) != str(exc):
                    log.error("guard %s refused: %s", name, exc)
                self.errors[name] = str(exc)
                continue
            self._loaded[name] = LoadedGuard(manifest, probe, path, stamp)
            self.errors.pop(name, None)
            return self._loaded[name]
        return self._loaded.get(name)

    def for_card(self, card: PersonaCard | None, engine: Engine) -> LoadedGuard | None:
        """The guard that applies to a persona's requests (None: no card guard or switched off)."""
        if not self.enabled or card is None or card.guard is None:
            return None
        guard = self.get(card.name, engine)
        if guard is None:
            raise GuardMissingError(
                f"persona {card.name!r} has a [guard] but no trained guard; run "
                f"`persona train {card.name} --method guard`"
            )
        return guard

    async def score(
        self, engine: Engine, guard: LoadedGuard, texts: list[str], threshold: float | None = None
    ) -> list[Score]:
        """Score texts with one guard (one engine read for all of them)."""
        m = guard.manifest
        encoded = [user_turn_ids(engine.tokenizer, t) for t in texts]
        features = await engine.features(
            [tuple(ids) for ids, _ in encoded], [s for _, s in encoded], feature_reads(m)
        )
        probs = guard.probe.probabilities(np.asarray(features))
        limit = m.threshold if threshold is None else threshold
        scores = []
        for row in probs:
            flagged_p = float(1.0 - row[0])
            per = {c: float(row[1 + i]) for i, c in enumerate(m.categories)}
            top = max(per, key=per.__getitem__) if per else None
            flagged = flagged_p >= limit
            scores.append(Score(top if flagged else None, flagged_p, per, flagged))
        return scores

    def record(self, persona: str, stage: str, score: Score, action: str, text: str = "") -> None:
        """Count a decision and log it (with the user's text only when the operator asked)."""
        self.metrics.guard_checks.labels(persona, stage).inc()
        if score.flagged:
            self.metrics.guard_flags.labels(persona, stage, score.category or "", action).inc()
        extra = f" text={text!r}" if self.log_text and text else ""
        log.info(
            "guard persona=%s stage=%s category=%s score=%.3f action=%s%s",
            persona,
            stage,
            score.category or "-",
            score.score,
            action,
            extra,
        )


class GuardMissingError(Exception):
    """A card asks for a guard that has not been trained (or was refused)."""


def pick_reply(card: GuardCard, category: str | None, rng: random.Random) -> str:
    """One of the author's replies for a category, else the card's fallback reply."""
    replies = card.categories[category].replies if category in card.categories else []
    if replies:
        return rng.choice(replies)
    return card.fallback_reply

"""Test helper: ask llama.cpp (npm node-llama-cpp, prebuilt) for teacher-forced log-probabilities.

`scripts/install-llama.sh` installs node-llama-cpp 3.21.1 into the persona studio cache;
`skip_reason()` says why the llama.cpp checks cannot run when node or that install is missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from data.home import cache_dir

SCRIPT = Path(__file__).parent / "llama" / "teacher_force.mjs"
GREEDY = Path(__file__).parent / "llama" / "greedy.mjs"
TOKENIZE = Path(__file__).parent / "llama" / "tokenize.mjs"
VERSION = "3.21.1"


def llama_dir() -> Path:
    """Where scripts/install-llama.sh puts node-llama-cpp."""
    return cache_dir() / "llama"


def skip_reason() -> str | None:
    """Why llama.cpp cannot run here, or None."""
    if shutil.which("node") is None:
        return "node is not installed (apt-get install nodejs npm), so llama.cpp cannot run"
    package = llama_dir() / "node_modules" / "node-llama-cpp" / "package.json"
    if not package.is_file() or json.loads(package.read_text()).get("version") != VERSION:
        return f"node-llama-cpp {VERSION} is not installed: run sh scripts/install-llama.sh"
    return None


@dataclass(frozen=True)
class Position:
    """llama.cpp's greedy choice at one teacher-forced position."""

    token: int
    logprob: float
    """llama.cpp's log-probability of its own choice."""
    chosen: float | None
    """Where llama.cpp's choice is not the reply's token: the log-probability it gives that one."""


def teacher_force(
    model: Path, sequences: list[tuple[list[int], list[int]]], lora: Path | None = None
) -> list[list[Position]]:
    """For each (prompt, reply): llama.cpp's greedy choice before each reply token."""
    job = {
        "model": str(model),
        "lora": str(lora) if lora else None,
        "sequences": [{"prompt": p, "reply": r} for p, r in sequences],
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(job, handle)
    try:
        done = subprocess.run(
            ["node", str(SCRIPT), str(llama_dir()), handle.name],
            capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
    finally:
        Path(handle.name).unlink(missing_ok=True)
    if done.returncode != 0:
        raise RuntimeError(f"llama.cpp failed: {done.stderr[-2000:]}")
    result = json.loads(done.stdout)
    return [
        [Position(int(pos["token"]), float(pos["logprob"]), pos["chosen"]) for pos in seq]
        for seq in result["sequences"]
    ]


def greedy(model: Path, prompt: list[int], max_tokens: int) -> tuple[list[int], list[str]]:
    """llama.cpp's greedy reply to `prompt` (token ids, each token's text), up to end of turn."""
    result = _node(GREEDY, {"model": str(model), "prompt": prompt, "max_tokens": max_tokens})
    return [int(t) for t in result["tokens"]], [str(p) for p in result["pieces"]]


def tokenize(model: Path, text: str) -> list[int]:
    """llama.cpp's tokens for a completion prompt: control tokens read, BOS first."""
    return [int(t) for t in _node(TOKENIZE, {"model": str(model), "text": text})["tokens"]]


def _node(script: Path, job: dict[str, Any]) -> Any:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(job, handle)
    try:
        done = subprocess.run(
            ["node", str(script), str(llama_dir()), handle.name],
            capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
    finally:
        Path(handle.name).unlink(missing_ok=True)
    if done.returncode != 0:
        raise RuntimeError(f"llama.cpp failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


@dataclass(frozen=True)
class Agreement:
    """How llama.cpp's greedy choice compares with ours along one teacher-forced reply."""

    positions: int
    near_ties: list[tuple[int, float, float]]
    """(position, our margin, llama.cpp's margin) where the top tokens differ within allowance."""
    disagreements: list[tuple[int, float, float]]
    """The same where a margin exceeds the allowance: a real difference."""


def agreement(
    reply: list[int], ours: list[tuple[int, float]], theirs: list[Position], allowance: float
) -> Agreement:
    """Compare greedy choices; `ours[i]` is (our runner-up id, our top-2 margin in nats)."""
    ties, wrong = [], []
    for i, (token, position) in enumerate(zip(reply, theirs, strict=True)):
        best = position.token
        if best == token:
            continue
        their_margin = position.logprob - (position.chosen if position.chosen is not None else -1e9)
        our_margin = ours[i][1] if ours[i][0] == best else float("inf")
        item = (i, our_margin, their_margin)
        (ties if max(our_margin, their_margin) <= allowance else wrong).append(item)
    return Agreement(len(reply), ties, wrong)


def greedy_with_margins(
    model: Any, prompt: list[int], n: int
) -> tuple[list[int], list[tuple[int, float]]]:
    """MLX's greedy reply and, at each position, the runner-up id and the top-2 margin."""
    import mlx.core as mx
    from mlx_lm.generate import generate_step

    reply = [int(t) for t, _ in generate_step(mx.array(prompt), model, max_tokens=n)]
    logits = model(mx.array([prompt + reply]))[0, len(prompt) - 1 : -1].astype(mx.float32)
    logprobs = np.array(logits - mx.logsumexp(logits, axis=-1, keepdims=True))
    runners = []
    for row in logprobs:
        second, first = np.argsort(row)[-2:]
        runners.append((int(second), float(row[first] - row[second])))
    return reply, runners


def with_adapter(model_dir: Path, adapter: Path) -> Any:
    """The model with a checkpoint loaded as mlx-lm LoRA layers (as the server runs it)."""
    from mlx_lm.tuner.utils import load_adapters
    from mlx_lm.utils import load_model

    model, _ = load_model(model_dir)
    return load_adapters(model, str(adapter))

"""Fine-tuning jobs: training speed against `persona train` run directly, and SSE event latency.

Both runs train the same persona folder (the first `--rows` single-turn Juni conversations with
Juni's card) on the same base model with the same settings, one after the other in this run:

1. `persona train FOLDER --json` as a child process, reading its step events;
2. `persona serve`'s app in this process (uvicorn, real HTTP), a job created with the official
   SDK for the same persona and settings, its events read from the job's SSE stream.

Speed is the trainer's own tokens per second, the median over steps 2..N (step 1 includes
compilation). Latency is the time from the trainer printing a step event (stamped by a relay
between the trainer and the server, which adds only a pipe hop) to the SSE client receiving it.

Usage: python bench/jobs.py [--model embedded] [--rows 16] [--epochs 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.blas import ensure_fast_blas  # noqa: E402  (before anything imports mlx)

BLAS = ensure_fast_blas()

RELAY = """\
import subprocess, sys, time
log = open(sys.argv[1], "a")
child = subprocess.Popen(sys.argv[2:], stdout=subprocess.PIPE)
for line in child.stdout:
    log.write(f"{time.time()!r} {line.decode()}")
    log.flush()
    sys.stdout.buffer.write(line)
    sys.stdout.flush()
sys.exit(child.wait())
"""


def make_persona(folder: Path, rows: int) -> None:
    """`juni` with only its first `rows` single-turn conversations."""
    juni = ROOT / "data" / "samples" / "juni"
    folder.mkdir(parents=True)
    (folder / "persona.toml").write_bytes((juni / "persona.toml").read_bytes())
    picked = []
    for line in (juni / "train.jsonl").read_text().splitlines():
        if len(json.loads(line)["messages"]) == 2:
            picked.append(line)
        if len(picked) == rows:
            break
    (folder / "train.jsonl").write_text("\n".join(picked) + "\n")


LAYERS: dict[str, int] = {}
"""`--layers`, when given (a toy model has fewer blocks than the card adapts)."""


def settings_flags(epochs: int) -> dict[str, int]:
    """The overrides both runs use: no validation or checkpoints inside the timed steps."""
    return {"epochs": epochs, "val_every": 10_000, "checkpoint_every": 10_000, **LAYERS}


def speed(steps: list[dict[str, float]]) -> float:
    """Median trained tokens per second over steps 2..N."""
    rates = [s["tokens_per_sec"] for s in steps if s["step"] >= 2] or [
        s["tokens_per_sec"] for s in steps
    ]
    return statistics.median(rates)


def direct(folder: Path, model: str, adapters: Path, epochs: int) -> float:
    """`persona train` run directly; its tokens per second."""
    argv = [
        sys.executable,
        "-P",
        "-m",
        "studio",
        "train",
        str(folder),
        "--json",
        "--model",
        model,
        "--adapters",
        str(adapters),
    ]
    for name, value in settings_flags(epochs).items():
        argv += ["--" + name.replace("_", "-"), str(value)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return speed([e for e in events if e["event"] == "step"])


async def as_job(model: str, home: Path, epochs: int) -> tuple[float, list[float]]:
    """The same training as a job of the real app; its tokens per second and event latencies."""
    import httpx
    import uvicorn
    from openai import AsyncOpenAI

    import server.jobs.fine_tuning as jobs
    from server.app import create_app
    from server.settings import ServerSettings

    relay, stamps = home / "relay.py", home / "stamps.log"
    relay.write_text(RELAY)
    command = jobs.train_command
    jobs.train_command = lambda *a, **k: [
        sys.executable,
        str(relay),
        str(stamps),
        *command(*a, **k),
    ]  # type: ignore[assignment]
    app = create_app(ServerSettings(model=model, port=0, log_level="warning"))
    server = uvicorn.Server(uvicorn.Config(app, port=0, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers only this flag
        await asyncio.sleep(0.05)
    url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    received: dict[int, float] = {}
    steps: list[dict[str, float]] = []
    async with httpx.AsyncClient(base_url=url, timeout=None) as http:
        while (await http.get("/health")).status_code != 200:  # noqa: ASYNC110
            await asyncio.sleep(0.5)
        client = AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
        flags = settings_flags(epochs)
        job = await client.fine_tuning.jobs.create(
            model="juni",
            training_file="persona:juni",
            hyperparameters={"n_epochs": flags.pop("epochs")},
            extra_body=flags,
        )
        async with http.stream("GET", f"/v1/fine_tuning/jobs/{job.id}/events/stream") as stream:
            async for line in stream.aiter_lines():
                if not line.startswith("data:"):
                    continue
                now = time.time()
                event = json.loads(line[5:])
                data = event.get("data") or {}
                if data.get("event") == "step":
                    received[data["step"]] = now
                    steps.append(data)
                if data.get("status") in ("succeeded", "failed", "cancelled"):
                    break
    server.should_exit = True
    await task
    printed = {}
    for line in stamps.read_text().splitlines():
        stamp, _, payload = line.partition(" ")
        if payload.startswith("{") and json.loads(payload).get("event") == "step":
            printed[json.loads(payload)["step"]] = float(stamp)
    latencies = [received[s] - printed[s] for s in received if s in printed]
    return speed(steps), latencies


def main() -> None:
    """Run both and print the ratio and the latencies."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--layers", type=int, help="override the card's layers")
    args = parser.parse_args()
    if args.layers:
        LAYERS["layers"] = args.layers
    print(BLAS.note)
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as tmp:
        home = Path(tmp)
        from data.home import cache_dir

        # A fresh home for the runs, but the prepared base model from the usual cache.
        os.environ.setdefault("PERSONA_CACHE", str(cache_dir()))
        os.environ["PERSONA_HOME"] = str(home)
        make_persona(home / "personas" / "juni", args.rows)
        folder = home / "personas" / "juni"
        started = time.perf_counter()
        base = direct(folder, args.model, home / "direct-adapters", args.epochs)
        print(f"persona train (direct): {base:.1f} tok/s ({time.perf_counter() - started:.0f} s)")
        started = time.perf_counter()
        rate, latencies = asyncio.run(as_job(args.model, home, args.epochs))
        print(f"fine-tuning job:        {rate:.1f} tok/s ({time.perf_counter() - started:.0f} s)")
    print(f"job / direct: {rate / base:.3f}x (goal >= 0.95x)")
    ms = sorted(1000 * x for x in latencies)
    if ms:
        p50, p90 = ms[len(ms) // 2], ms[min(len(ms) - 1, int(len(ms) * 0.9))]
        print(
            f"trainer print -> SSE client, {len(ms)} step events: p50 {p50:.1f} ms, "
            f"p90 {p90:.1f} ms, max {ms[-1]:.1f} ms (goal < 100 ms)"
        )


if __name__ == "__main__":
    main()

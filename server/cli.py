"""`persona serve`: serve the base model and every persona over the OpenAI API with uvicorn."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from server.settings import ServerSettings


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the `serve` options; each overrides config.toml and `PERSONA_*` variables."""
    parser.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default 8000)")
    parser.add_argument(
        "--model", help="base model: embedded (default), an MLX folder or a repo id"
    )
    parser.add_argument(
        "--personas",
        action="append",
        metavar="DIR",
        help="extra folder of personas, searched after your own (repeatable)",
    )
    parser.add_argument("--adapters", metavar="DIR", help="the adapter registry folder")
    parser.add_argument(
        "--api-key", help="require 'Authorization: Bearer KEY' (or PERSONA_API_KEY)"
    )
    parser.add_argument("--max-batch", type=int, help="most sequences decoded together (default 8)")
    web = parser.add_mutually_exclusive_group()
    web.add_argument(
        "--web",
        choices=("on", "locked", "off"),
        help="browser chat: on (/ and /chat/PERSONA, the default), locked (only /chat/PERSONA "
        "and the routes it needs), off",
    )
    web.add_argument("--no-web", dest="web", action="store_const", const="off", help="--web off")
    parser.add_argument(
        "--no-guard",
        dest="guard",
        action="store_false",
        default=None,
        help="switch off every persona guard (cards' [guard] tables are then not enforced)",
    )
    parser.add_argument(
        "--guard-log-text",
        action="store_true",
        default=None,
        help="include the user's text in guard log lines (off by default)",
    )
    parser.add_argument(
        "--allowed-hosts",
        metavar="NAME",
        action="append",
        help="a Host name served without an API key besides loopback ones; '*' for any "
        "(repeatable)",
    )
    parser.add_argument(
        "--cors-origins",
        metavar="ORIGIN",
        action="append",
        help="a web origin (https://app.example) allowed to call the API from a browser; "
        "'*' for any (repeatable)",
    )
    parser.add_argument(
        "--insecure-no-key",
        action="store_true",
        default=None,
        help="allow listening on a non-loopback interface without --api-key",
    )


def run(args: argparse.Namespace) -> int:
    """Load the settings once, print the BLAS in use, and serve until interrupted."""
    from adapters.blas import ensure_fast_blas
    from adapters.private_tmp import use_private_tmp
    from server.local_policy import is_loopback
    from server.settings import SettingsError, load_settings

    use_private_tmp()
    blas = ensure_fast_blas()
    overrides = {
        "host": args.host,
        "port": args.port,
        "model": args.model,
        "personas_dirs": tuple(args.personas) if args.personas else None,
        "adapters_dir": args.adapters,
        "api_key": args.api_key,
        "max_batch": args.max_batch,
        "guard": args.guard,
        "guard_log_text": args.guard_log_text,
        "web": args.web,
        "allowed_hosts": tuple(args.allowed_hosts) if args.allowed_hosts else None,
        "cors_origins": tuple(args.cors_origins) if args.cors_origins else None,
        "insecure_no_key": args.insecure_no_key,
    }
    try:
        settings = load_settings(overrides)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(blas.note, file=sys.stderr)
    if not (is_loopback(settings.host) or settings.api_key or settings.insecure_no_key):
        print(
            f"error: refusing to listen on {settings.host} without an API key: anyone who can "
            "reach it could use it. Set --api-key KEY (or PERSONA_API_KEY), or pass "
            "--insecure-no-key if that is what you want",
            file=sys.stderr,
        )
        return 2
    import uvicorn

    from server.app import create_app

    _seed_sample_adapters(settings)
    app = create_app(settings)
    print(
        f"persona studio: OpenAI API at http://{settings.host}:{settings.port}/v1 "
        f"(model {settings.model}; loading in the background)",
        file=sys.stderr,
    )
    if settings.web != "off":
        where = "/chat/PERSONA only" if settings.web == "locked" else "/"
        print(f"browser chat at http://{settings.host}:{settings.port}{where}", file=sys.stderr)
    from server.access_log import quiet_health_polls

    quiet_health_polls()
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level)
    return 0


def _seed_sample_adapters(settings: ServerSettings) -> None:
    """On the embedded model, copy the shipped sample adapters into an empty registry slot."""
    from adapters.base import EMBEDDED, EMBEDDED_ID
    from adapters.sample_adapters import install_sample_adapters

    if settings.model not in (EMBEDDED, EMBEDDED_ID):
        return
    for run_dir in install_sample_adapters(settings.adapters_path()):
        print(f"installed sample adapter {run_dir.parent.name}@{run_dir.name}", file=sys.stderr)

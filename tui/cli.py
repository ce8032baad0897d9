"""`persona tui` (and a bare `persona`): open the studio, starting a server if none answers."""

from __future__ import annotations

import argparse
import signal
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the `tui` options; each overrides tui.toml and `PERSONA_*` variables."""
    parser.add_argument("--url", help="the server to use (default http://127.0.0.1:8000)")
    parser.add_argument(
        "--model", help="base model of a server started here: embedded (default), folder, repo id"
    )
    parser.add_argument(
        "--no-server",
        action="store_true",
        help="never start a server; wait for one at --url instead",
    )


def run(args: argparse.Namespace) -> int:
    """Load the settings once, build the app, run it, and stop any server it started."""
    import msgspec

    from .settings import SettingsError, load_settings

    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    changes: dict[str, object] = {}
    if args.url:
        changes["url"] = args.url
    if args.model:
        changes["model"] = args.model
    if args.no_server:
        changes["start_server"] = False
    settings = msgspec.structs.replace(settings, **changes)

    from .api import ApiClient
    from .app import make_app

    app = make_app(settings, ApiClient(settings.url, timeout=settings.timeout))
    # A terminal closing or a `kill` should still stop the server this session started.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: app.exit())
    try:
        app.run()
    finally:
        if app.server is not None:
            app.server.stop()
    return app.return_code or 0

"""The server's one typed settings Struct and how it is loaded.

Precedence, lowest first: built-in defaults, the `[server]` table of `config.toml` in the home
folder, `PERSONA_<FIELD>` environment variables, then command-line flags. Nothing here runs at
import time; the CLI calls `load_settings` once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from data.home import home_dir


class SettingsError(Exception):
    """The configuration file or an environment override is invalid."""


class ServerSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything `persona serve` can be told."""

    host: str = "127.0.0.1"
    """Interface to bind; loopback unless told otherwise."""
    port: int = 8000
    """TCP port to listen on."""
    model: str = "embedded"
    """Base model: `embedded`, an MLX model folder, or a Hugging Face repo id."""
    personas_dirs: tuple[str, ...] = ()
    """Extra persona folders, searched after the user's personas and before the samples."""
    adapters_dir: str | None = None
    """The adapter registry; None means the home folder's `adapters`."""
    api_key: str | None = None
    """When set, every route but /health needs `Authorization: Bearer <key>`."""
    allowed_hosts: tuple[str, ...] = ()
    """Host names served without an API key besides loopback ones; `*` serves any (see
    `server/local_policy.py`)."""
    cors_origins: tuple[str, ...] = ()
    """Web origins (`https://app.example`) allowed to call the API from a browser; `*` is any."""
    insecure_no_key: bool = False
    """Allow listening on a non-loopback interface without an API key."""
    max_body_bytes: int = 2_000_000
    """Requests with a larger body are refused with 413."""
    max_file_bytes: int = 50_000_000
    """Uploads to `/v1/files` over this size are refused with 413."""
    max_files_total_bytes: int = 2_000_000_000
    """All stored files together (uploads and job results) may not exceed this; an upload that
    would is refused with 413 `files_quota_exceeded` until files are deleted."""
    max_batch: int = 8
    """Most sequences decoded together in one step."""
    max_adapters: int = 8
    """Most adapters kept loaded at once (least recently used leave first)."""
    prefix_cache_bytes: Annotated[int, msgspec.Meta(ge=0)] = 268_435_456
    """Bytes of prompt KV state kept so a conversation's next turn reuses its history
    (least recently used leave first); 0 turns the prefix cache off."""
    lookup_draft: Annotated[int, msgspec.Meta(ge=0, le=16)] = 0
    """Prompt-lookup draft tokens a lone greedy stream verifies per forward pass (0: off). The
    reply is the model's own greedy one except at near-exact ties, where a multi-token pass can
    round differently from single steps; it only speeds up replies that repeat their context."""
    gemv_head: bool = False
    """Compute a lone greedy stream's output layer as NumPy's matrix-vector product (about half
    the time of MLX's on Linux CPUs), with a proof that it picks MLX's token and a fallback to
    MLX's product at near ties: replies are unchanged."""
    max_tokens: int = 512
    """Completion length when neither the request, the persona nor the base model sets one."""
    web: Literal["on", "locked", "off"] = "on"
    """The browser chat: `on` serves `/` and `/chat/{persona}`; `locked` serves only
    `/chat/{persona}` and the read and chat routes it needs (every other route 404s); `off` none."""
    log_level: str = "info"
    """uvicorn's log level."""
    guard: bool = True
    """Run persona guards where a card has one; only an operator turns this off (`--no-guard`)."""
    guard_log_text: bool = False
    """Include the user's text in guard log lines (off: decisions are logged without it)."""
    responses_max_stored: int = 1000
    """Stored Responses API responses kept in the home folder; the oldest go first."""
    responses_max_age_days: float = 30.0
    """Stored responses older than this are forgotten (`previous_response_id` then 404s)."""

    def adapters_path(self) -> Path:
        """The adapter registry folder."""
        from data.home import adapters_dir

        return Path(self.adapters_dir).expanduser() if self.adapters_dir else adapters_dir()

    def persona_paths(self) -> list[Path]:
        """The extra persona folders as paths."""
        return [Path(p).expanduser() for p in self.personas_dirs]


class _ConfigFile(msgspec.Struct):
    """`config.toml`: other packages may own other tables, so only `[server]` is read."""

    server: ServerSettings = ServerSettings()


def config_path() -> Path:
    """Where the user's configuration file lives."""
    return home_dir() / "config.toml"


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> ServerSettings:
    """Build the settings: file, then `PERSONA_*` environment, then explicit overrides."""
    settings = _from_file(path or config_path())
    changes = _from_env(os.environ if environ is None else environ)
    changes.update({k: v for k, v in (overrides or {}).items() if v is not None})
    if not changes:
        return settings
    merged = msgspec.structs.asdict(settings) | changes
    try:
        return msgspec.convert(merged, ServerSettings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"invalid setting: {exc}") from None


def _from_file(path: Path) -> ServerSettings:
    try:
        payload = path.read_bytes()
    except FileNotFoundError:
        return ServerSettings()
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return msgspec.toml.decode(payload, type=_ConfigFile).server
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise SettingsError(f"{path}: {exc}") from None


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for field in msgspec.structs.fields(ServerSettings):
        value = environ.get(f"PERSONA_{field.name.upper()}")
        if value is None or value == "":
            continue
        if field.name == "personas_dirs":
            changes[field.name] = tuple(p for p in value.split(os.pathsep) if p)
        elif field.name in ("allowed_hosts", "cors_origins"):
            changes[field.name] = tuple(p.strip() for p in value.split(",") if p.strip())
        else:
            changes[field.name] = value
    return changes

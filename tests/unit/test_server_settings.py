"""Server settings: config.toml, then PERSONA_* variables, then flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.settings import ServerSettings, SettingsError, config_path, load_settings


def test_defaults_bind_loopback_without_a_key(tmp_path: Path) -> None:
    settings = load_settings(path=tmp_path / "absent.toml", environ={})
    assert settings == ServerSettings()
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.api_key is None


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[server]\nport = 9000\nmodel = "/models/a"\nmax_batch = 4\n[tui]\ntheme = "x"\n'
    )
    env = {"PERSONA_PORT": "9100", "PERSONA_API_KEY": "k1", "PERSONA_PERSONAS_DIRS": "/a:/b"}
    settings = load_settings({"port": 9200, "host": None}, path=path, environ=env)
    assert settings.port == 9200  # flag beats environment beats file
    assert settings.model == "/models/a"  # only the file sets it
    assert settings.max_batch == 4
    assert settings.api_key == "k1"
    assert settings.personas_dirs == ("/a", "/b")
    assert settings.host == "127.0.0.1"  # a flag left out changes nothing


def test_config_lives_in_the_home_folder(persona_home: Path) -> None:
    assert config_path() == persona_home / "config.toml"
    config_path().write_text('[server]\napi_key = "from-file"\n')
    assert load_settings(environ={}).api_key == "from-file"


def test_unknown_key_in_server_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[server]\nprot = 1\n")
    with pytest.raises(SettingsError, match="prot"):
        load_settings(path=path, environ={})


def test_bad_environment_value_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="port"):
        load_settings(path=tmp_path / "x.toml", environ={"PERSONA_PORT": "eighty"})


def test_prefix_cache_budget_from_file_or_environment_and_never_negative(tmp_path: Path) -> None:
    assert load_settings(path=tmp_path / "x.toml", environ={}).prefix_cache_bytes > 0
    path = tmp_path / "config.toml"
    path.write_text("[server]\nprefix_cache_bytes = 1048576\n")
    assert load_settings(path=path, environ={}).prefix_cache_bytes == 1 << 20
    env = {"PERSONA_PREFIX_CACHE_BYTES": "0"}
    assert load_settings(path=path, environ=env).prefix_cache_bytes == 0
    with pytest.raises(SettingsError, match="prefix_cache_bytes"):
        load_settings(path=tmp_path / "x.toml", environ={"PERSONA_PREFIX_CACHE_BYTES": "-1"})


def test_lookup_draft_is_off_by_default_and_bounded(tmp_path: Path) -> None:
    missing = tmp_path / "x.toml"
    assert load_settings(path=missing, environ={}).lookup_draft == 0
    assert load_settings(path=missing, environ={"PERSONA_LOOKUP_DRAFT": "4"}).lookup_draft == 4
    for bad in ("-1", "17"):
        with pytest.raises(SettingsError, match="lookup_draft"):
            load_settings(path=missing, environ={"PERSONA_LOOKUP_DRAFT": bad})


def test_gemv_head_is_off_by_default(tmp_path: Path) -> None:
    missing = tmp_path / "x.toml"
    assert load_settings(path=missing, environ={}).gemv_head is False
    assert load_settings(path=missing, environ={"PERSONA_GEMV_HEAD": "true"}).gemv_head is True

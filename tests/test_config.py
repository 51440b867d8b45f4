"""Configuration from the environment."""

import pytest

from casvault.config import Config
from casvault.errors import ConfigError


def test_defaults_and_env_overrides(tmp_path):
    cfg = Config.from_env({"CASVAULT_ROOT": str(tmp_path), "CASVAULT_THUMB_SIZE": "128", "CASVAULT_WATCH": "1"})
    assert cfg.root == tmp_path and cfg.thumb_size == 128 and cfg.watch is True
    assert Config.from_env({}).trash_retention_days == 30 and Config.from_env({}).thumb_size == 256


@pytest.mark.parametrize(
    "env",
    [
        {"CASVAULT_THUMB_SIZE": "big"},
        {"CASVAULT_LINK_MODE": "reflink"},
        {"CASVAULT_PARTITION_TZ": "Mars/Olympus"},
        {"CASVAULT_QUOTA_MAX_BYTES": "-1"},
        {"CASVAULT_WATCH": "maybe"},
    ],
)
def test_bad_values_are_errors(env):
    with pytest.raises(ConfigError):
        Config.from_env(env)


def test_missing_secret_in_production_is_an_error(tmp_path):
    with pytest.raises(ConfigError):
        Config.from_env({"CASVAULT_ROOT": str(tmp_path)}).require_secret()
    assert Config.from_env({"CASVAULT_ROOT": str(tmp_path), "CASVAULT_DEV": "1"}).require_secret()


def test_app_refuses_to_start_without_secret(tmp_path, monkeypatch):
    from web import create_app

    monkeypatch.delenv("CASVAULT_SECRET_KEY", raising=False)
    monkeypatch.delenv("CASVAULT_DEV", raising=False)
    with pytest.raises(ConfigError):
        create_app({"root": tmp_path})


def test_dev_secret_is_random_per_root_and_kept(tmp_path):
    import os
    import stat

    a = Config(root=tmp_path / "a", dev=True)
    first = a.require_secret()
    assert len(first) == 64 and a.require_secret() == first
    assert stat.S_IMODE(os.stat(tmp_path / "a" / "meta" / "dev-secret").st_mode) == 0o600
    assert Config(root=tmp_path / "b", dev=True).require_secret() != first


def test_production_refuses_a_secret_shorter_than_32_bytes(tmp_path):
    from web import create_app

    for short in ("s", "x" * 31, "é" * 15):  # 30 bytes in UTF-8
        with pytest.raises(ConfigError, match="at least 32 bytes"):
            Config(root=tmp_path, secret_key=short).require_secret()
        with pytest.raises(ConfigError):
            create_app(Config(root=tmp_path, secret_key=short))
    assert Config(root=tmp_path, secret_key="é" * 16).require_secret() == "é" * 16  # 32 bytes
    assert Config(root=tmp_path, secret_key="s", dev=True).require_secret() == "s"  # development may use any


def test_decode_budget_comes_from_the_environment_and_sizes_the_process_budget(tmp_path):
    from casvault import decoding
    from casvault.store import Store

    config = Config.from_env({"CASVAULT_ROOT": str(tmp_path), "CASVAULT_DECODE_BUDGET_PIXELS": "5000000"})
    assert config.decode_budget_pixels == 5_000_000
    Store(config)
    assert decoding.budget().capacity == 5_000_000
    Store(Config(root=tmp_path))
    assert decoding.budget().capacity == 64_000_000
    for bad in ("0", "-1", "many"):
        with pytest.raises(ConfigError):
            Config.from_env({"CASVAULT_ROOT": str(tmp_path), "CASVAULT_DECODE_BUDGET_PIXELS": bad})


def test_a_relative_root_is_made_absolute_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for cfg in (Config(), Config.from_env({"CASVAULT_ROOT": "./data"}), Config().with_(root="sub/../data")):
        assert cfg.root == tmp_path / "data" and cfg.root.is_absolute()
    monkeypatch.chdir("/")
    assert Config.from_env({"CASVAULT_ROOT": str(tmp_path / "x")}).root == tmp_path / "x"

"""Configuration is declared once and read from env, .env or YAML, with clear errors.

Defends: defaults run offline; env vars and YAML set nested settings; a bad setting is named
with its environment variable and never echoes a secret value.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.config import load_settings
from ingest.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(__import__("os").environ):
        if name.startswith("SPINDEX_"):
            monkeypatch.delenv(name)


def test_defaults_are_the_embedded_ones() -> None:
    settings = load_settings()
    assert settings.index.backend == "local"
    assert settings.embedding.provider == "offline" and settings.embedding.dimensions == 384
    assert settings.state.backend == "local"
    assert settings.graph.auth == "sandbox"


def test_env_and_yaml_set_nested_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "spindex.yaml"
    config.write_text("chunking:\n  chunk_tokens: 300\n  overlap_tokens: 30\ngraph:\n  sites: ['contoso.sharepoint.com:/sites/hr']\n")
    monkeypatch.setenv("SPINDEX_SYNC__MAX_FILE_MB", "5")
    settings = load_settings(config)
    assert settings.chunking.chunk_tokens == 300
    assert settings.graph.sites == ["contoso.sharepoint.com:/sites/hr"]
    assert settings.max_file_bytes == 5 * 2**20


def test_env_wins_over_yaml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "spindex.yaml"
    config.write_text("chunking:\n  chunk_tokens: 300\n")
    monkeypatch.setenv("SPINDEX_CHUNKING__CHUNK_TOKENS", "400")
    assert load_settings(config).chunking.chunk_tokens == 400


def test_invalid_setting_is_named_without_its_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPINDEX_EMBEDDING__PROVIDER", "azure_openai")
    monkeypatch.setenv("SPINDEX_EMBEDDING__API_KEY", "sk-very-secret-value")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "embedding" in str(info.value) and "SPINDEX_EMBEDDING" in str(info.value)
    assert "sk-very-secret-value" not in str(info.value)


def test_overlap_must_be_smaller_than_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPINDEX_CHUNKING__CHUNK_TOKENS", "100")
    monkeypatch.setenv("SPINDEX_CHUNKING__OVERLAP_TOKENS", "100")
    with pytest.raises(ConfigError, match="overlap"):
        load_settings()


def test_missing_config_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml")


def test_unknown_model_needs_dimensions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPINDEX_EMBEDDING__PROVIDER", "openai")
    monkeypatch.setenv("SPINDEX_EMBEDDING__MODEL", "my-model")
    with pytest.raises(ConfigError, match="dimensions"):
        load_settings()

"""Log lines are structured, carry their run id, and never show a secret; metrics come from the report.

Defends: one JSON object per line (ts, level, logger, msg, run_id, extras) when the stream is
not a terminal or SPINDEX_LOG_FORMAT=json, readable text otherwise; every line inside a run
carries that run's id, also from tasks the run starts, and concurrent runs keep theirs apart;
the values of secret settings, connection-string keys and bearer tokens are masked wherever
they appear in a line (message, arguments, extras, tracebacks); OpenTelemetry metrics (items by
kind, chunks, tokens, Graph requests, throttling, duration) are built from a RunReport, are off
unless SPINDEX_OTEL_ENABLED=true, and enabling them without OpenTelemetry installed says what
to install.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from ingest import observability
from ingest.config import load_settings
from ingest.errors import ConfigError
from ingest.observability import (
    MASK,
    NOISY_LOGGERS,
    check_otel,
    configure_logging,
    record_run_metrics,
    redact,
    register_secret,
    register_settings_secrets,
    run_context,
    run_metrics,
)
from ingest.report import RunReport

log = logging.getLogger("spindex.test")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("SPINDEX_LOG_FORMAT", "SPINDEX_LOG_LEVEL", "SPINDEX_OTEL_ENABLED"):
        monkeypatch.delenv(name, raising=False)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    monkeypatch.setattr(observability, "_process_run_id", None)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)


def lines(stream: io.StringIO) -> list[str]:
    return [line for line in stream.getvalue().splitlines() if line.strip()]


def records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines(stream)]


# -- format ---------------------------------------------------------------------------------


def test_json_lines_when_not_on_a_terminal() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream, level="DEBUG")
    log.info("synced %d items", 3, extra={"drive_id": "b!abc", "counts": {"created": 2}})
    try:
        raise ValueError("broken")
    except ValueError:
        log.exception("a failure")
    first, second = records(stream)
    assert {"ts", "level", "logger", "msg", "run_id"} <= first.keys()
    assert first["msg"] == "synced 3 items" and first["level"] == "INFO" and first["logger"] == "spindex.test"
    assert first["drive_id"] == "b!abc" and first["counts"] == {"created": 2}
    assert first["run_id"] is None
    assert first["ts"].endswith("Z")
    assert second["level"] == "ERROR" and "ValueError: broken" in second["exc"]


def test_text_on_a_terminal_and_the_environment_decides_over_it(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = Terminal()
    configure_logging(stream=terminal)
    log.info("hello", extra={"drive_id": "d1"})
    (line,) = lines(terminal)
    assert not line.startswith("{") and "hello" in line and "drive_id=d1" in line

    monkeypatch.setenv("SPINDEX_LOG_FORMAT", "json")
    forced = Terminal()
    configure_logging(stream=forced)
    log.info("hello")
    assert records(forced)[0]["msg"] == "hello"

    monkeypatch.setenv("SPINDEX_LOG_FORMAT", "text")
    piped = io.StringIO()
    configure_logging(stream=piped)
    log.info("hello")
    assert not lines(piped)[0].startswith("{")


def test_the_settings_decide_once_loaded(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("SPINDEX_LOG_FORMAT=json\nSPINDEX_LOG_LEVEL=warning\n")
    settings = load_settings()
    terminal = Terminal()
    configure_logging(stream=terminal, settings=settings)
    log.info("below the level")
    log.warning("shown")
    assert [entry["msg"] for entry in records(terminal)] == ["shown"]


def test_configuring_again_replaces_the_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging(stream=first)
    configure_logging(stream=second)
    log.info("once")
    assert lines(first) == [] and len(lines(second)) == 1


# -- run id ---------------------------------------------------------------------------------


async def test_every_line_of_a_run_carries_its_run_id_and_concurrent_runs_keep_theirs() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream, run_id="process-1")

    async def run(run_id: str) -> None:
        with run_context(run_id):
            log.info("start")

            async def child() -> None:
                await asyncio.sleep(0)
                log.info("from a task")

            await asyncio.gather(child(), child())
            log.info("end")

    log.info("before")
    await asyncio.gather(run("run-a"), run("run-b"))
    log.info("after")
    seen = records(stream)
    assert seen[0]["run_id"] == "process-1" and seen[-1]["run_id"] == "process-1"
    by_run: dict[str, int] = {}
    for entry in seen[1:-1]:
        by_run[entry["run_id"]] = by_run.get(entry["run_id"], 0) + 1
    assert by_run == {"run-a": 4, "run-b": 4}


def test_text_lines_show_the_run_id() -> None:
    terminal = Terminal()
    configure_logging(stream=terminal)
    with run_context("20250101T000000Z-abc123"):
        log.info("inside")
    assert "[20250101T000000Z-abc123]" in lines(terminal)[0]


# -- redaction ------------------------------------------------------------------------------

GRAPH_SECRET = "graph-secret-Zq8v~W1xYp"
INDEX_KEY = "IndexAdminKey0123456789abcdef"
ACCOUNT_KEY = "QWNjb3VudEtleVZhbHVlVGhhdElzU2VjcmV0PT0="


def test_secret_settings_are_masked_wherever_they_appear(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPINDEX_GRAPH__CLIENT_SECRET", GRAPH_SECRET)
    monkeypatch.setenv("SPINDEX_INDEX__API_KEY", INDEX_KEY)
    monkeypatch.setenv(
        "SPINDEX_STATE__BLOB_CONNECTION_STRING",
        f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={ACCOUNT_KEY};EndpointSuffix=core.windows.net",
    )
    settings = load_settings()
    register_settings_secrets(settings)
    stream = io.StringIO()
    configure_logging(stream=stream)
    log.info(f"secret in the message {GRAPH_SECRET}")
    log.info("secret in an argument %s", INDEX_KEY)
    log.info("secret in an extra", extra={"config": {"key": INDEX_KEY}})
    log.info("the account key alone: %s", ACCOUNT_KEY)
    try:
        raise RuntimeError(f"failed with {GRAPH_SECRET}")
    except RuntimeError:
        log.exception("traceback")
    text = stream.getvalue()
    for secret in (GRAPH_SECRET, INDEX_KEY, ACCOUNT_KEY):
        assert secret not in text
    assert text.count(MASK) >= 5  # message, argument, extra, key alone, exception
    assert all(isinstance(entry, dict) for entry in records(stream))  # masking keeps the JSON valid


def test_key_and_token_shapes_are_masked_without_registration() -> None:
    text = redact(
        "conn AccountKey=abcdEFGH1234ijkl==;BlobEndpoint=x sas ?sv=2024&sig=Zm9vYmFyYmF6cXV4 "
        "header Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.payload.signature"
    )
    assert "abcdEFGH1234ijkl" not in text and "Zm9vYmFyYmF6cXV4" not in text and "eyJhbGciOiJSUzI1NiJ9" not in text
    assert "AccountKey=***" in text and "Bearer ***" in text


def test_a_filter_masks_records_for_other_handlers() -> None:
    register_secret(SecretStr("another-secret-value"))
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "value %s", ("another-secret-value",), None)
    observability.RedactingFilter().filter(record)
    assert record.getMessage() == f"value {MASK}"


def test_short_values_are_not_treated_as_secrets() -> None:
    register_secret("abc")
    assert redact("abc is a word") == "abc is a word"


# -- metrics --------------------------------------------------------------------------------


def _report() -> RunReport:
    report = RunReport(mode="delta")
    report.count("drive-a", "created", 3)
    report.count("drive-a", "unchanged", 5)
    report.count("drive-b", "acl_only", 2)
    report.embedding.update(inputs=7, tokens=120, reused=4)
    report.graph = {"requests": {"delta": 2, "permissions": 3}, "requests_total": 5, "throttled": 1}
    report.finish()
    return report


def test_metrics_are_built_from_the_run_report() -> None:
    points = {(name, tuple(sorted(attrs.items()))): value for name, _, value, attrs in run_metrics(_report())}
    base = (("mode", "delta"), ("status", "ok"))

    def value(name: str, **extra: str) -> float:
        return points[(name, tuple(sorted(dict(base, **extra).items())))]

    assert value("spindex.items", kind="created") == 3 and value("spindex.items", kind="acl_only") == 2
    assert value("spindex.chunks.embedded") == 7 and value("spindex.embedding.tokens") == 120
    assert value("spindex.graph.requests", kind="permissions") == 3 and value("spindex.graph.throttled") == 1
    assert value("spindex.runs") == 1


def test_metrics_are_recorded_into_an_opentelemetry_meter_provider() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    assert record_run_metrics(_report(), meter_provider=provider)
    data = reader.get_metrics_data()
    found: dict[str, list[Any]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found[metric.name] = list(metric.data.data_points)
    items = {dict(p.attributes)["kind"]: p.value for p in found["spindex.items"]}
    assert items == {"created": 3, "unchanged": 5, "acl_only": 2}
    assert sum(p.value for p in found["spindex.graph.requests"]) == 5
    assert found["spindex.chunks.embedded"][0].value == 7
    (duration,) = found["spindex.run.duration"]
    assert duration.count == 1
    provider.shutdown()


def test_metrics_are_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(observability, "_provider", None)
    assert record_run_metrics(_report()) is False
    assert observability._provider is None  # nothing was even set up
    check_otel()  # disabled: nothing to check


def test_enabling_metrics_without_opentelemetry_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SPINDEX_OTEL_ENABLED", "true")
    monkeypatch.setattr(observability, "_provider", None)
    for name in [m for m in sys.modules if m == "opentelemetry" or m.startswith("opentelemetry.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # import opentelemetry -> ImportError
    with pytest.raises(ConfigError, match=r"pip install 'spindex\[otel\]'"):
        check_otel()
    with caplog.at_level(logging.ERROR):
        assert record_run_metrics(_report()) is False
    assert "SPINDEX_OTEL_ENABLED" in caplog.text and "pip install" in caplog.text

"""Logs and metrics of spindex runs: structured lines, a run id on each, secrets masked.

    configure_logging()                      # once, at process start (the CLI, the scheduler)
    with run_context(report.run_id): ...     # every line inside carries this run id
    record_run_metrics(report)               # OpenTelemetry, only when SPINDEX_OTEL_ENABLED=true

Log lines are JSON objects (`ts`, `level`, `logger`, `msg`, `run_id`, then any extras) when
stderr is not a terminal or `SPINDEX_LOG_FORMAT=json` (the `log_format` setting), and readable
text on a terminal or with `SPINDEX_LOG_FORMAT=text`. `SPINDEX_LOG_LEVEL` sets the level
(default INFO). Entry points call `configure_logging()` at start-up, from the environment, and
`configure_logging(settings=...)` once the settings are loaded (a `.env` or YAML file may set them).

Redaction is defence in depth: messages are built from ids, names and statuses (errors.py), and
on top of that every line written by the handler installed here has the values of known secret
settings, and anything shaped like a connection-string key or a bearer token, masked.

Metrics are built from the RunReport after a run, so the pipeline stays free of telemetry code.
OpenTelemetry is an optional extra, imported only when enabled (`otel_enabled`,
SPINDEX_OTEL_ENABLED=true).
"""

from __future__ import annotations

import contextlib
import json as _json
import logging
import os
import re
import sys
import threading
import traceback
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import IO, Any

from pydantic import BaseModel, SecretStr

from ingest.errors import ConfigError
from ingest.report import CHANGE_KINDS, RunReport

MASK = "***"
MIN_SECRET_LENGTH = 6  # shorter values would mask ordinary words
OTEL_ENV = "SPINDEX_OTEL_ENABLED"
METER_NAME = "spindex"
# Libraries that log every request at INFO: quieted to WARNING unless the level is DEBUG.
NOISY_LOGGERS = ("azure", "httpx", "httpcore", "msal", "openai")
# Environment variables whose values are secrets, whatever spindex setting they feed.
_SECRET_ENV_WORDS = ("SECRET", "KEY", "PASSWORD", "CONNECTION_STRING", "TOKEN", "SAS")
_SECRET_ENV_EXTRA = ("AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PASSWORD", "AZURE_STORAGE_CONNECTION_STRING")
# Shapes of secrets that need no registration: connection-string keys, SAS signatures, bearer tokens.
_SHAPES = (
    re.compile(r"(?i)\b(AccountKey|SharedAccessKey|SharedAccessSignature|client_secret|api[-_]?key|password|sig)=([^;&\s'\"]+)"),
    re.compile(r"(?i)\b(Bearer)\s+([A-Za-z0-9._~+/=-]{8,})"),
)
# LogRecord attributes that are not extras (the rest of a record's __dict__ is).
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "run_id"}

_run_id: ContextVar[str | None] = ContextVar("spindex_run_id", default=None)
_process_run_id: str | None = None
_secrets: set[str] = set()
_secrets_lock = threading.Lock()


# -- run id ---------------------------------------------------------------------------------


def current_run_id() -> str | None:
    """The run id log lines carry here: the innermost `run_context`, else the process default."""
    return _run_id.get() or _process_run_id


@contextlib.contextmanager
def run_context(run_id: str) -> Iterator[None]:
    """Every log line written inside the block (tasks started in it included) carries `run_id`."""
    token = _run_id.set(run_id)
    try:
        yield
    finally:
        _run_id.reset(token)


class RunIdFilter(logging.Filter):
    """Puts `record.run_id` on every record (None outside a run)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Always passes the record, with its run id set."""
        if getattr(record, "run_id", None) is None:
            record.run_id = current_run_id()
        return True


# -- redaction ------------------------------------------------------------------------------


def register_secret(value: str | SecretStr | None) -> None:
    """Mask `value` in every line logged from now on (values shorter than 6 are ignored)."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    parts = {value}
    for match in _SHAPES[0].finditer(value):  # a connection string's key may be logged alone
        parts.add(match.group(2))
    with _secrets_lock:
        _secrets.update(p for p in parts if len(p) >= MIN_SECRET_LENGTH)


def register_settings_secrets(settings: BaseModel) -> None:
    """Mask the value of every SecretStr setting (nested models included)."""
    for name in type(settings).model_fields:
        value = getattr(settings, name, None)
        if isinstance(value, SecretStr):
            register_secret(value)
        elif isinstance(value, BaseModel):
            register_settings_secrets(value)


def register_environment_secrets(environ: Mapping[str, str] | None = None) -> None:
    """Mask the values of secret-looking SPINDEX_ variables and azure-identity's secret variables."""
    environ = os.environ if environ is None else environ
    for name, value in environ.items():
        upper = name.upper()
        if upper in _SECRET_ENV_EXTRA or (upper.startswith("SPINDEX_") and any(w in upper for w in _SECRET_ENV_WORDS)):
            register_secret(value)


def redact(text: str) -> str:
    """`text` with every registered secret, and anything shaped like a key or token, masked."""
    with _secrets_lock:
        known = sorted(_secrets, key=len, reverse=True)  # longest first: a secret may contain another
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    for shape in _SHAPES:
        text = shape.sub(lambda m: f"{m.group(1)}{'=' if shape is _SHAPES[0] else ' '}{MASK}", text)
    return text


class RedactingFilter(logging.Filter):
    """Masks secrets in a record's message (for handlers other than the one installed here)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Always passes the record, with its message redacted and its args folded in."""
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True


# -- formatters -----------------------------------------------------------------------------


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


def _plain(value: Any) -> Any:
    """A JSON-ready form of an extra value (str() for anything json cannot take)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, run_id, extras, and exc when raised."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON, secrets masked."""
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.")
            + f"{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "run_id": getattr(record, "run_id", None) or current_run_id(),
        }
        for key, value in _extras(record).items():
            entry.setdefault(key, _plain(value))
        if record.exc_info:
            entry["exc"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        if record.stack_info:
            entry["stack"] = record.stack_info
        return redact(_json.dumps(entry, ensure_ascii=False, default=str))


class TextFormatter(logging.Formatter):
    """`time level [run id] logger: message key=value ...`, secrets masked."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(run_tag)s%(name)s: %(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        """The record as readable text, secrets masked."""
        run_id = getattr(record, "run_id", None) or current_run_id()
        record.run_tag = f"[{run_id}] " if run_id else ""
        extras = {k: v for k, v in _extras(record).items() if k != "run_tag"}
        text = super().format(record)
        if extras:
            text += " " + " ".join(f"{k}={_plain(v)}" for k, v in extras.items())
        return redact(text)


# -- configuration --------------------------------------------------------------------------


def _wants_json(json: bool | None, stream: IO[str]) -> bool:
    if json is not None:
        return json
    chosen = os.environ.get("SPINDEX_LOG_FORMAT", "").strip().lower()
    if chosen in ("json", "text"):
        return chosen == "json"
    isatty = getattr(stream, "isatty", None)
    return not (isatty is not None and isatty())


def configure_logging(
    json: bool | None = None,
    run_id: str | None = None,
    *,
    level: int | str | None = None,
    stream: IO[str] | None = None,
    settings: Any | None = None,
) -> logging.Handler:
    """Send every log record to `stream` (default stderr) as JSON lines or text; returns the handler.

    `json` None decides by `settings.log_format` (when given and not `auto`), else by
    `SPINDEX_LOG_FORMAT`, else by whether the stream is a terminal; `level` likewise by
    `settings.log_level`, else `SPINDEX_LOG_LEVEL` (default INFO). `run_id` is the id lines
    carry outside any `run_context`. Calling it again replaces the handler installed before, so
    it is safe to call at start-up and again once the settings are loaded. Secrets found in the
    environment (and in `settings`) are registered for masking at once.
    """
    global _process_run_id
    stream = stream if stream is not None else sys.stderr
    _process_run_id = run_id
    register_environment_secrets()
    if settings is not None:
        register_settings_secrets(settings)
        if json is None and settings.log_format != "auto":
            json = settings.log_format == "json"
        if level is None:
            level = settings.log_level
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if _wants_json(json, stream) else TextFormatter())
    handler.addFilter(RunIdFilter())
    handler.addFilter(RedactingFilter())
    handler._spindex = True  # type: ignore[attr-defined]  # marks the handler a later call replaces
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_spindex", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    chosen = level if level is not None else os.environ.get("SPINDEX_LOG_LEVEL", "INFO").upper()
    root.setLevel(chosen)
    quiet = logging.WARNING if root.getEffectiveLevel() > logging.DEBUG else logging.NOTSET
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(quiet)
    return handler


# -- metrics --------------------------------------------------------------------------------


def otel_enabled(settings: Any | None = None) -> bool:
    """True when `settings.otel_enabled` is, or, without settings, SPINDEX_OTEL_ENABLED is true (1, yes, on)."""
    if settings is not None:
        return bool(settings.otel_enabled)
    return os.environ.get(OTEL_ENV, "").strip().lower() in ("1", "true", "yes", "on")


OTEL_MISSING = (
    f"{OTEL_ENV}=true, but OpenTelemetry is not installed: pip install 'spindex[otel]' "
    "(opentelemetry-sdk and an OTLP exporter), or unset " + OTEL_ENV
)


def check_otel(settings: Any | None = None) -> None:
    """Raise ConfigError with what to install when metrics are enabled but cannot be exported."""
    if not otel_enabled(settings):
        return
    try:
        _exporting_provider()
    except ImportError:
        raise ConfigError(OTEL_MISSING) from None


MetricPoint = tuple[str, str, float, dict[str, str]]  # name, "counter" | "histogram", value, attributes


def run_metrics(report: RunReport) -> list[MetricPoint]:
    """The metric points of one run: items by kind, chunks, tokens, Graph requests, throttling, duration."""
    base = {"mode": report.mode, "status": report.status}
    points: list[MetricPoint] = [("spindex.runs", "counter", 1, dict(base))]
    totals = report.totals()
    for kind in CHANGE_KINDS:
        if totals.get(kind):
            points.append(("spindex.items", "counter", totals[kind], {**base, "kind": kind}))
    embedding = report.embedding
    points.append(("spindex.chunks.embedded", "counter", embedding.get("inputs", 0), dict(base)))
    points.append(("spindex.chunks.reused", "counter", embedding.get("reused", 0), dict(base)))
    points.append(("spindex.embedding.tokens", "counter", embedding.get("tokens", 0), dict(base)))
    requests = report.graph.get("requests")
    if isinstance(requests, Mapping):
        for kind, count in requests.items():
            points.append(("spindex.graph.requests", "counter", float(count), {**base, "kind": str(kind)}))
    throttled = report.graph.get("throttled", 0)
    points.append(("spindex.graph.throttled", "counter", float(throttled) if isinstance(throttled, (int, float)) else 0.0, dict(base)))
    points.append(("spindex.run.duration", "histogram", report.duration_s, dict(base)))
    return points


_UNITS = {"spindex.run.duration": "s", "spindex.embedding.tokens": "{token}", "spindex.graph.requests": "{request}"}
_provider: Any = None


def _exporting_provider() -> Any:
    """The MeterProvider to record into: one the application or a distro configured, else ours (OTLP)."""
    global _provider
    if _provider is not None:
        return _provider
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider

    current = metrics.get_meter_provider()
    if isinstance(current, MeterProvider):  # e.g. azure-monitor-opentelemetry or opentelemetry-instrument
        _provider = current
        return current
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    # The exporter reads OTEL_EXPORTER_OTLP_ENDPOINT (Container Apps' managed agent sets it).
    if os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "").startswith("grpc"):
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter  # type: ignore[no-redef]
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "spindex"}
    reader = PeriodicExportingMetricReader(OTLPMetricExporter())
    _provider = MeterProvider(metric_readers=[reader], resource=Resource.create(attributes))
    return _provider


def record_run_metrics(report: RunReport, *, meter_provider: Any | None = None, settings: Any | None = None) -> bool:
    """Record the run's metrics into `meter_provider`, or, when metrics are enabled, export them.

    Enabled by `settings.otel_enabled` (SPINDEX_OTEL_ENABLED). Returns True when recorded.
    Never raises: a run that finished is not failed by telemetry; a missing OpenTelemetry
    install is logged with what to install.
    """
    log = logging.getLogger(__name__)
    provider = meter_provider
    if provider is None:
        if not otel_enabled(settings):
            return False
        try:
            provider = _exporting_provider()
        except ImportError:
            log.error(OTEL_MISSING)
            return False
    try:
        meter = provider.get_meter(METER_NAME)
        instruments: dict[str, Any] = {}
        for name, kind, value, attributes in run_metrics(report):
            if name not in instruments:
                make = meter.create_histogram if kind == "histogram" else meter.create_counter
                instruments[name] = make(name, unit=_UNITS.get(name, ""))
            if kind == "histogram":
                instruments[name].record(value, attributes)
            elif value:
                instruments[name].add(value, attributes)
        if meter_provider is None:
            provider.force_flush()  # a container job may exit right after the run
    except Exception as exc:  # telemetry must not fail a finished run
        log.warning("run metrics not recorded (%s: %s)", type(exc).__name__, exc)
        return False
    return True


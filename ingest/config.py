"""One typed Settings model for spindex.

Values come, highest first, from: explicit overrides (the CLI), environment variables
(`SPINDEX_` prefix, `__` between levels, e.g. `SPINDEX_EMBEDDING__PROVIDER=azure_openai`), a
`.env` file in the working directory, and an optional YAML file (`--config` or
`SPINDEX_CONFIG`). Secrets are `SecretStr`: they never print.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from ingest.errors import ConfigError

GRAPH_V1 = "https://graph.microsoft.com/v1.0"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
# Output sizes of the OpenAI embedding models (Azure OpenAI models page).
KNOWN_MODEL_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
MAX_VECTOR_DIMENSIONS = 4096  # Azure AI Search limit per vector field
_yaml_path: ContextVar[Path | None] = ContextVar("spindex_yaml_path", default=None)


class GraphSettings(BaseModel):
    """Where SharePoint content comes from and how spindex signs in to Microsoft Graph."""

    auth: Literal["sandbox", "client_secret", "certificate", "managed_identity", "workload_identity", "azure_cli"] = Field(
        "sandbox",
        description=(
            "How to obtain Graph tokens: `certificate` (needed for SharePoint REST app-only), `client_secret`, "
            "`managed_identity` (user-assigned with `client_id`), `workload_identity` (AZURE_FEDERATED_TOKEN_FILE), "
            "`azure_cli`, or `sandbox` (the local sandbox tenant)."
        ),
    )
    base_url: str = Field(GRAPH_V1, description="Graph endpoint, ending in /v1.0.")
    tenant_id: str | None = Field(None, description="Entra tenant id (GUID) of the SharePoint tenant.")
    client_id: str | None = Field(None, description="Application (client) id of the app registration.")
    client_secret: SecretStr | None = Field(None, description="Client secret, for `auth: client_secret`.")
    certificate_path: Path | None = Field(None, description="PEM certificate with private key, for `auth: certificate`.")
    token_url: str | None = Field(None, description="Token endpoint of the sandbox tenant (sandbox auth only).")
    sharepoint_url: str | None = Field(
        None, description="Replaces https://<tenant>.sharepoint.com in site URLs for SharePoint REST (the sandbox)."
    )
    sites: list[str] = Field(
        default_factory=list,
        description="Sites to sync, as Graph site ids or `hostname:/sites/path`; empty means every site.",
    )
    include_pages: bool = Field(True, description="Also sync each site's Site Pages library.")
    page_size: int = Field(200, ge=1, le=999, description="Items per delta page ($top).")

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")


class IndexSettings(BaseModel):
    """Where chunks are indexed."""

    backend: Literal["local", "azure"] = Field("local", description="`local` (SQLite + numpy) or `azure` (Azure AI Search).")
    alias: str = Field("spindex", pattern=r"^[a-z0-9][a-z0-9-]{0,100}$", description="Alias readers query.")
    local_dir: Path | None = Field(None, description="Folder of the local index (default: <data_dir>/index).")
    endpoint: str | None = Field(None, description="Azure AI Search endpoint, https://<service>.search.windows.net.")
    api_key: SecretStr | None = Field(None, description="Azure AI Search admin key; omit to use Entra ID.")
    validation_queries: list[str] = Field(
        default_factory=list, description="Queries a rebuilt index must answer before the alias is swapped."
    )


class EmbeddingSettings(BaseModel):
    """How chunk text becomes vectors."""

    provider: Literal["offline", "openai", "azure_openai"] = Field(
        "offline", description="`offline` is deterministic and lexical, for demos and tests only."
    )
    model: str = Field("text-embedding-3-small", description="Model name (OpenAI) or model behind the deployment.")
    dimensions: int | None = Field(None, ge=1, le=MAX_VECTOR_DIMENSIONS, description="Vector size; defaults per model.")
    endpoint: str | None = Field(None, description="Azure OpenAI endpoint, or an OpenAI-compatible base URL.")
    deployment: str | None = Field(None, description="Azure OpenAI deployment name.")
    api_version: str = Field("2024-10-21", description="Azure OpenAI API version.")
    api_key: SecretStr | None = Field(None, description="API key; for Azure OpenAI omit it to use Entra ID.")
    batch_inputs: int = Field(256, ge=1, le=2048, description="Inputs per embeddings request (service max 2,048).")

    @model_validator(mode="after")
    def _dimensions(self) -> EmbeddingSettings:
        if self.dimensions is None:
            if self.provider == "offline":
                self.dimensions = 384
            elif self.model in KNOWN_MODEL_DIMENSIONS:
                self.dimensions = KNOWN_MODEL_DIMENSIONS[self.model]
            else:
                raise ValueError(f"embedding.dimensions is required for model {self.model!r}")
        if self.provider == "azure_openai" and not (self.endpoint and self.deployment):
            raise ValueError("embedding.endpoint and embedding.deployment are required for azure_openai")
        return self


class ChunkingSettings(BaseModel):
    """How text is cut into chunks (sizes in tokens of cl100k_base)."""

    chunk_tokens: int = Field(512, ge=16, le=8192, description="Target chunk size in tokens.")
    overlap_tokens: int = Field(64, ge=0, description="Tokens shared by neighbouring chunks.")

    @model_validator(mode="after")
    def _overlap(self) -> ChunkingSettings:
        if self.overlap_tokens >= self.chunk_tokens:
            raise ValueError("chunking.overlap_tokens must be smaller than chunking.chunk_tokens")
        return self


class SyncSettings(BaseModel):
    """Limits and knobs of a sync run."""

    max_file_mb: float = Field(100.0, gt=0, description="Files larger than this are skipped without download.")
    concurrency: int = Field(8, ge=1, le=64, description="Items processed at once.")
    libraries_at_once: int = Field(
        2, ge=1, le=32, description="Libraries synced at once; their items share `concurrency`."
    )
    mass_delete_share: float = Field(
        0.5, ge=0, le=1, description="A run that would delete more than this share of a library stops."
    )
    mass_delete_min_items: int = Field(
        10, ge=0, description="Deleting fewer items than this never counts as a mass deletion."
    )
    extract_processes: int | None = Field(
        None, ge=0, le=64,
        description="Worker processes for extraction and chunking; empty: one per CPU core; 0: threads of the job's own process.",
    )
    embed_linger_ms: float = Field(
        0.0, ge=0, le=1000,
        description="How long an embedding request waits for other items' chunks to share it (0: each item sends its own).",
    )


class BudgetSettings(BaseModel):
    """Client-side pacing to the services' quotas; a throttled response is still honoured (Retry-After)."""

    graph_ru_per_minute: int | None = Field(
        1200, ge=1,
        description=(
            "Graph resource units per minute for this app in the tenant (SharePoint tiers by licences: 1,200 up to 1k, "
            "2,400 up to 5k, 3,600 up to 15k, 4,800 up to 50k, 6,000 above); empty: no pacing."
        ),
    )
    graph_burst_seconds: float = Field(
        60.0, gt=0, le=600, description="Seconds' worth of the Graph budget that may be spent at once after an idle spell."
    )
    embedding_tokens_per_minute: int | None = Field(
        350_000, ge=1, description="Tokens per minute (TPM) of the embedding deployment; empty: no pacing."
    )
    embedding_requests_per_minute: int | None = Field(
        3_000, ge=1, description="Requests per minute (RPM) of the embedding deployment; empty: no pacing."
    )
    embedding_burst_seconds: float = Field(
        10.0, gt=0, le=600, description="Seconds' worth of the embedding budget that may be spent at once."
    )


class AclSettings(BaseModel):
    """The documented policy for permission forms that are wider than named people and groups."""

    everyone_claims: bool = Field(True, description="Map 'Everyone' claims to principal values readers can match.")
    widen_organization_links: bool = Field(False, description="Treat organization-wide sharing links as 'everyone internal'.")


class StateSettings(BaseModel):
    """Where cursors and leases live."""

    backend: Literal["local", "blob"] = Field("local", description="`local` files or Azure Blob Storage.")
    local_dir: Path | None = Field(None, description="Folder of local state (default: <data_dir>/state).")
    blob_account_url: str | None = Field(None, description="https://<account>.blob.core.windows.net")
    blob_connection_string: SecretStr | None = Field(None, description="Connection string (instead of Entra ID).")
    blob_container: str = Field("spindex-state", description="Container for cursors and leases.")
    staging_container: str = Field("spindex-staging", description="Container for extracted text kept for rebuilds.")
    lease_seconds: int = Field(30, ge=15, le=60, description="Blob lease duration; renewed while a run holds it.")


class AzureSettings(BaseModel):
    """How spindex signs in to Azure AI Search, Blob Storage and Azure OpenAI when no key is set."""

    auth: Literal["default", "managed_identity", "workload_identity", "azure_cli"] = Field(
        "default",
        description=(
            "Entra ID credential for Azure services without a key: `default` (DefaultAzureCredential: environment, "
            "workload identity, managed identity, Azure CLI), or one of those explicitly."
        ),
    )
    client_id: str | None = Field(
        None,
        description=(
            "Client id of the user-assigned managed identity or workload identity (default: graph.client_id "
            "when graph.auth is managed_identity or workload_identity, else AZURE_CLIENT_ID)."
        ),
    )


# Standard crontab numbers the weekdays from Sunday (0 or 7); APScheduler 3.x from Monday, so
# day-of-week fields are rewritten to names before APScheduler sees them (apscheduler issue 286).
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _weekday_number(token: str) -> int:
    token = token.strip().lower()
    if token.isdigit() and 0 <= int(token) <= 7:
        return int(token) % 7
    if token[:3] in _WEEKDAYS:
        return _WEEKDAYS.index(token[:3])
    raise ValueError(f"day of week {token!r} is not 0-7 or a day name")


def _standard_weekdays(field: str) -> str:
    """A crontab day-of-week field as APScheduler day names, with crontab's Sunday-first numbers."""
    if field == "*":
        return field
    days: set[int] = set()
    for part in field.split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"day of week step {step_text!r} must be positive")
        if span == "*":
            first, last = 0, 6
        elif "-" in span:
            low, high = span.split("-", 1)
            first, last = _weekday_number(low), _weekday_number(high)
            if high.strip() == "7":
                last = 7  # "5-7" is Friday to Sunday
            if last < first:
                raise ValueError(f"day of week range {span!r} runs backwards")
        else:
            first = last = _weekday_number(span)
            if step_text:
                last = 6  # "1/2": from Monday, every second day
        days.update(day % 7 for day in range(first, last + 1, step))
    return ",".join(_WEEKDAYS[day] for day in sorted(days))


def cron_trigger(expression: str, timezone: str = "UTC") -> Any:
    """An APScheduler CronTrigger for a standard five-field crontab expression, in `timezone`.

    Raises ValueError for an expression that is not one.
    """
    from zoneinfo import ZoneInfo

    from apscheduler.triggers.cron import CronTrigger

    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"a cron expression has 5 fields (minute hour day month weekday), got {len(fields)}")
    minute, hour, day, month, weekday = fields
    return CronTrigger(
        minute=minute, hour=hour, day=day, month=month, day_of_week=_standard_weekdays(weekday), timezone=ZoneInfo(timezone)
    )


class ScheduleSettings(BaseModel):
    """When `spindex schedule` runs each job: standard cron expressions, empty to disable a job."""

    delta: str = Field("*/15 * * * *", description="Cron expression of the delta job (empty: never).")
    acl: str = Field("7 * * * *", description="Cron expression of the permission (ACL) sweep (empty: never).")
    full: str = Field("37 2 * * *", description="Cron expression of the full job (empty: never).")
    timezone: str = Field("UTC", description="IANA time zone the cron expressions are read in.")
    grace_seconds: int = Field(
        60, ge=1, le=3600,
        description="On SIGTERM, how long a running job may go on before it is cancelled; keep the platform's termination grace period at least this long.",
    )
    misfire_grace_seconds: int = Field(
        300, ge=1, description="A run that cannot start within this many seconds of its time is skipped; missed runs are coalesced into one."
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("delta", "acl", "full")
    @classmethod
    def _cron(cls, value: str) -> str:
        value = " ".join(value.split())
        if value:
            try:
                cron_trigger(value)
            except ValueError as exc:
                raise ValueError(f"not a cron expression: {exc}") from None
        return value


class Settings(BaseSettings):
    """Every setting of spindex, with its default."""

    model_config = SettingsConfigDict(
        env_prefix="SPINDEX_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="forbid",
        yaml_file=None,
    )

    data_dir: Path = Field(Path(".spindex"), description="Folder for local index, state and run reports.")
    graph: GraphSettings = Field(default_factory=GraphSettings)
    index: IndexSettings = Field(default_factory=IndexSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    chunking: ChunkingSettings = Field(default_factory=ChunkingSettings)
    sync: SyncSettings = Field(default_factory=SyncSettings)
    budget: BudgetSettings = Field(default_factory=BudgetSettings)
    acl: AclSettings = Field(default_factory=AclSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    azure: AzureSettings = Field(default_factory=AzureSettings)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", description="Log lines as JSON objects, as text, or `auto`: JSON unless stderr is a terminal."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Lowest level of log records written.")
    otel_enabled: bool = Field(
        False,
        description="Export run metrics with OpenTelemetry to OTEL_EXPORTER_OTLP_ENDPOINT (needs the `otel` extra).",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv_settings]
        yaml_file = _yaml_path.get() or os.environ.get("SPINDEX_CONFIG")
        if yaml_file:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=yaml_file))
        return tuple(sources)

    @property
    def index_dir(self) -> Path:
        """Folder of the local index."""
        return self.index.local_dir or self.data_dir / "index"

    @property
    def state_dir(self) -> Path:
        """Folder of local state."""
        return self.state.local_dir or self.data_dir / "state"

    @property
    def reports_dir(self) -> Path:
        """Folder where every run writes its JSON report."""
        return self.data_dir / "reports"

    @property
    def max_file_bytes(self) -> int:
        """The size limit in bytes."""
        return int(self.sync.max_file_mb * 2**20)


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(p) for p in item.get("loc", ())) or "settings"
        env = "SPINDEX_" + "__".join(str(p) for p in item.get("loc", ())).upper()
        lines.append(f"  {where}: {item.get('msg')} (set {env} or `{where}` in the YAML file)")
    return "invalid configuration:\n" + "\n".join(lines)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Read and validate the settings, or raise ConfigError listing each bad setting.

    The message names settings and their environment variables, never their values.
    """
    if config_file is None and os.environ.get("SPINDEX_CONFIG"):
        config_file = Path(os.environ["SPINDEX_CONFIG"])
    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"configuration file not found: {config_file}")
    token = _yaml_path.set(config_file)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    finally:
        _yaml_path.reset(token)


def reference() -> list[tuple[str, str, str]]:
    """(environment variable, default, description) for every setting, for the README."""
    rows: list[tuple[str, str, str]] = []

    def walk(model: type[BaseModel], prefix: list[str]) -> None:
        for name, info in model.model_fields.items():
            annotation = info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                walk(annotation, prefix + [name])
                continue
            env = "SPINDEX_" + "__".join(prefix + [name]).upper()
            if info.default_factory is not None:
                default = repr(info.default_factory())  # type: ignore[call-arg]
            else:
                default = "" if info.default is None else str(info.default)
            rows.append((env, default, info.description or ""))

    walk(Settings, [])
    return rows

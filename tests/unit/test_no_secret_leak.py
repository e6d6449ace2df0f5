"""No secret ever appears in output, logs, the run report or an error message (DESIGN invariant 8).

Defends: with distinctive values in SPINDEX_GRAPH__CLIENT_SECRET, SPINDEX_EMBEDDING__API_KEY,
SPINDEX_INDEX__API_KEY and SPINDEX_STATE__BLOB_CONNECTION_STRING (with an AccountKey), runs that
fail in each of the ways secrets get near messages (the sandbox refusing a client secret; Graph
denying a permission; an unreachable embeddings endpoint; an embeddings endpoint refusing the
key; Blob Storage refusing the account key) never show any of the values, nor a fragment of
one, in stdout or stderr, in any log record at DEBUG (raw, and as spindex's handler writes
it), in the run report JSON, or in the abort reason. The same holds through `spindex run`
(typer's CliRunner), `python -m jobs` and `spindex doctor` in subprocesses.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ingest.config import load_settings
from ingest.observability import NOISY_LOGGERS, configure_logging
from ingest.runs import run_sync
from sandbox.graph_common import ALL_PERMISSIONS, SITES_READ
from sandbox.server import DEFAULT_CLIENT_ID, SandboxServer
from sandbox.tenant import Tenant, load_tenant
from tests.fakes.embeddings_server import FakeEmbeddingsServer

ROOT = Path(__file__).resolve().parents[2]
GRAPH_SECRET = "gS3cr3t~Q7vLm2Xw9Rb4Tz"
EMBEDDING_KEY = "sk-emb-K4p9Wq2Ls7Xv3Nd8"
INDEX_KEY = "SrchAdm9Jt4Hq8Zx2Vc6Bn1"
ACCOUNT_KEY = "U3BpbmRleExlYWtDaGVja0FjY291bnRLZXlWYWx1ZTEyMw=="
SECRETS = {
    "graph client secret": GRAPH_SECRET,
    "embedding api key": EMBEDDING_KEY,
    "index api key": INDEX_KEY,
    "blob account key": ACCOUNT_KEY,
}


def fragments(secret: str) -> list[str]:
    """The whole secret and its middle: a masked echo such as `sk-...wxyz` must not give it away either."""
    middle = secret[len(secret) // 4 : len(secret) // 4 + 10]
    return [secret, middle]


def assert_no_secret(texts: dict[str, str]) -> None:
    for where, text in texts.items():
        for name, secret in SECRETS.items():
            for fragment in fragments(secret):
                assert fragment not in text, f"the {name} leaked into {where}"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def connection_string(port: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    )


@dataclass
class World:
    tenant: Tenant
    accepting: SandboxServer  # accepts GRAPH_SECRET
    refusing: SandboxServer  # expects another secret
    denying: SandboxServer  # accepts GRAPH_SECRET, withholds Sites.Read.All
    embeddings: FakeEmbeddingsServer  # accepts another key


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    tenant = load_tenant("demo")
    credentials = {DEFAULT_CLIENT_ID: GRAPH_SECRET}
    with (
        SandboxServer(tenant, credentials=credentials) as accepting,
        SandboxServer(tenant) as refusing,
        SandboxServer(tenant, credentials=credentials, granted_permissions=set(ALL_PERMISSIONS) - {SITES_READ}) as denying,
        FakeEmbeddingsServer(dimensions=16, keys=("a-different-key",)) as embeddings,
    ):
        yield World(tenant, accepting, refusing, denying, embeddings)


def base_env(server: SandboxServer, tenant: Tenant, data: Path) -> dict[str, str]:
    """Every secret set, pointing at `server`; the local index and state unless a scenario says otherwise."""
    return {
        "SPINDEX_DATA_DIR": str(data),
        "SPINDEX_GRAPH__AUTH": "sandbox",
        "SPINDEX_GRAPH__BASE_URL": server.graph_url,
        "SPINDEX_GRAPH__TENANT_ID": tenant.tenant_id,
        "SPINDEX_GRAPH__SHAREPOINT_URL": server.base_url,
        "SPINDEX_GRAPH__CLIENT_SECRET": GRAPH_SECRET,
        "SPINDEX_EMBEDDING__API_KEY": EMBEDDING_KEY,
        "SPINDEX_INDEX__API_KEY": INDEX_KEY,
        "SPINDEX_STATE__BLOB_CONNECTION_STRING": connection_string(_closed_port()),
    }


def openai_at(url: str) -> dict[str, str]:
    return {"SPINDEX_EMBEDDING__PROVIDER": "openai", "SPINDEX_EMBEDDING__DIMENSIONS": "16", "SPINDEX_EMBEDDING__ENDPOINT": url}


Scenario = Callable[[World, Path, pytest.FixtureRequest], dict[str, str]]


def refused_client_secret(world: World, data: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    return base_env(world.refusing, world.tenant, data)


def permission_denied(world: World, data: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    return base_env(world.denying, world.tenant, data)


def embeddings_unreachable(world: World, data: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    return {**base_env(world.accepting, world.tenant, data), **openai_at(f"http://127.0.0.1:{_closed_port()}/v1")}


def embeddings_refuse_the_key(world: World, data: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    return {**base_env(world.accepting, world.tenant, data), **openai_at(world.embeddings.base_url + "/v1")}


def blob_refuses_the_account_key(world: World, data: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    azurite = request.getfixturevalue("azurite")
    return {
        **base_env(world.accepting, world.tenant, data),
        "SPINDEX_STATE__BACKEND": "blob",
        "SPINDEX_STATE__BLOB_CONNECTION_STRING": connection_string(azurite.port),
    }


SCENARIOS: dict[str, Scenario] = {
    "refused client secret": refused_client_secret,
    "permission denied": permission_denied,
    "embeddings unreachable": embeddings_unreachable,
    "embeddings refuse the key": embeddings_refuse_the_key,
    "blob refuses the account key": blob_refuses_the_account_key,
}


@pytest.fixture(scope="module")
def azurite() -> Iterator[object]:
    from tests.fakes.azurite import Azurite

    with Azurite() as running:
        yield running


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("SPINDEX_"):
            monkeypatch.delenv(name)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)


def _records(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured record: formatted, and its raw attributes (arguments, extras) too."""
    return caplog.text + "\n".join(repr(vars(record)) for record in caplog.records)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_a_failing_run_shows_no_secret(
    scenario: str, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest,
) -> None:
    for name, value in SCENARIOS[scenario](world, tmp_path / "data", request).items():
        monkeypatch.setenv(name, value)
    handler_output = io.StringIO()
    configure_logging(json=True, level="DEBUG", stream=handler_output)
    caplog.set_level(logging.DEBUG)
    settings = load_settings()
    report = asyncio.run(run_sync(settings, full=True))
    assert report.status == "aborted", report.as_dict()
    out, err = capfd.readouterr()
    assert_no_secret({
        "stdout": out,
        "stderr": err,
        "log records": _records(caplog),
        "spindex's log lines": handler_output.getvalue(),
        "the run report": (settings.reports_dir / "latest.json").read_text(),
        "the abort reason": report.abort_reason or "",
        "the settings' repr": repr(settings),
    })


@pytest.mark.parametrize("scenario", ["refused client secret", "embeddings refuse the key"])
def test_spindex_run_shows_no_secret(
    scenario: str, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    from jobs.cli import app

    env = SCENARIOS[scenario](world, tmp_path / "data", request)
    result = CliRunner().invoke(app, ["run", "full"], env=env)
    assert result.exit_code == 20, result.output
    assert_no_secret({"output": result.output, "exception": repr(result.exception)})


def _subprocess(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SPINDEX_")}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env={**clean, **env, "SPINDEX_LOG_LEVEL": "DEBUG"},
        capture_output=True, text=True, timeout=120,
    )


def test_python_m_jobs_shows_no_secret(world: World, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    done = _subprocess(["-m", "jobs", "delta"], permission_denied(world, tmp_path / "data", request))
    assert done.returncode == 20, done.stderr
    assert_no_secret({"stdout": done.stdout, "stderr": done.stderr})


def test_spindex_doctor_shows_no_secret(world: World, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    env = embeddings_refuse_the_key(world, tmp_path / "data", request)
    done = _subprocess(["-m", "jobs.ops_cli", "doctor"], env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "embedding.api_key" in done.stdout
    assert_no_secret({"stdout": done.stdout, "stderr": done.stderr})

"""`spindex doctor` names each missing permission and how to grant it, and passes when all is well.

Defends: against the sandbox tenant with every permission granted, every check passes and the
exit code is 0; with GroupMember.Read.All withheld (and, separately, User.Read.All or
Sites.Read.All), exactly that check fails, its line names the permission and says to grant it
as a Microsoft Graph application permission with admin consent, and the exit code is 1; refused
credentials name the settings to check without printing the secret; a configuration that does
not load gives exit code 2; the embedder is probed with one embedding through the openai SDK.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from ingest.doctor import Diagnosis, diagnose
from ingest.observability import NOISY_LOGGERS
from jobs.demo import sandbox_overrides
from jobs.ops_cli import register
from sandbox.graph_common import ALL_PERMISSIONS
from sandbox.server import SandboxServer
from sandbox.tenant import Tenant, load_tenant
from tests.fakes.embeddings_server import FakeEmbeddingsServer

ALEX = "alice.nguyen@northwindrobotics.example"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[tuple[Tenant, SandboxServer]]:
    tenant = load_tenant("demo")
    with SandboxServer(tenant) as server:
        yield tenant, server


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sandbox: tuple[Tenant, SandboxServer]) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("SPINDEX_"):
            monkeypatch.delenv(name)
    root = logging.getLogger()
    handlers = list(root.handlers)
    yield
    sandbox[1].granted_permissions = set(ALL_PERMISSIONS)
    for handler in list(root.handlers):  # the CLI installs one on a stream CliRunner closes
        if handler not in handlers:
            root.removeHandler(handler)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)


async def run_doctor(sandbox: tuple[Tenant, SandboxServer], tmp_path: Path, **extra: Any) -> Diagnosis:
    tenant, server = sandbox
    overrides = sandbox_overrides(server, tenant)
    graph = {**overrides.pop("graph"), **extra.pop("graph", {})}
    return await diagnose(None, data_dir=tmp_path / "data", graph=graph, **overrides, **extra)


def failed(diagnosis: Diagnosis) -> list[str]:
    return [check.line() for check in diagnosis.problems]


async def test_with_every_permission_granted_every_check_passes(sandbox: tuple[Tenant, SandboxServer], tmp_path: Path) -> None:
    diagnosis = await run_doctor(sandbox, tmp_path)
    assert failed(diagnosis) == []
    assert diagnosis.exit_code == 0
    names = " ".join(check.name for check in diagnosis.checks if check.status == "ok")
    for needed in ("Sites.Read.All", "Files.Read.All", "User.Read.All", "GroupMember.Read.All", "sharepoint rest", "index", "state"):
        assert needed in names


@pytest.mark.parametrize("withheld", ["GroupMember.Read.All", "User.Read.All", "Sites.Read.All"])
async def test_a_withheld_permission_is_named_with_how_to_grant_it(
    sandbox: tuple[Tenant, SandboxServer], tmp_path: Path, withheld: str
) -> None:
    sandbox[1].granted_permissions = set(ALL_PERMISSIONS) - {withheld}
    diagnosis = await run_doctor(sandbox, tmp_path)
    problems = failed(diagnosis)
    assert len(problems) == 1, problems
    (line,) = problems
    assert withheld in line
    assert f"grant the app the Microsoft Graph application permission {withheld}" in line
    assert "admin consent" in line
    assert diagnosis.exit_code == 1


async def test_a_real_user_can_be_named_for_the_directory_probes(sandbox: tuple[Tenant, SandboxServer], tmp_path: Path) -> None:
    diagnosis = await diagnose(
        None, user=ALEX, data_dir=tmp_path / "data", **sandbox_overrides(sandbox[1], sandbox[0])
    )
    users = next(check for check in diagnosis.checks if "User.Read.All" in check.name)
    groups = next(check for check in diagnosis.checks if "GroupMember.Read.All" in check.name)
    assert users.status == "ok" and ALEX in users.detail
    assert groups.status == "ok" and "readable (" in groups.detail  # the user's real groups were listed


async def test_refused_credentials_name_the_settings_not_the_secret(sandbox: tuple[Tenant, SandboxServer], tmp_path: Path) -> None:
    secret = "wrong-Secret-0d9c8b7a6f"
    diagnosis = await run_doctor(sandbox, tmp_path, graph={"client_secret": secret})
    (problem,) = diagnosis.problems
    assert problem.name == "graph sign-in" and "graph.client_secret" in (problem.fix or "")
    assert all(secret not in line for line in diagnosis.lines())
    assert diagnosis.exit_code == 1


async def test_the_embedder_is_probed_with_one_embedding(sandbox: tuple[Tenant, SandboxServer], tmp_path: Path) -> None:
    with FakeEmbeddingsServer(dimensions=32, keys=("right-key",)) as embeddings:
        embedding = {"provider": "openai", "dimensions": 32, "endpoint": embeddings.base_url + "/v1"}
        good = await run_doctor(sandbox, tmp_path, embedding={**embedding, "api_key": "right-key"})
        bad = await run_doctor(sandbox, tmp_path, embedding={**embedding, "api_key": "wrong-key-123456"})
        offline = await run_doctor(sandbox, tmp_path, embedding={**embedding, "api_key": "wrong-key-123456"}, offline=True)
    check = next(c for c in good.checks if c.name.startswith("embedder"))
    assert check.status == "ok" and "32 dimensions" in check.detail
    (problem,) = bad.problems
    assert problem.name.startswith("embedder") and "embedding.api_key" in (problem.fix or "")
    assert offline.exit_code == 0 and embeddings.inputs == 1


def test_the_command_prints_one_line_per_check_and_sets_the_exit_code(
    sandbox: tuple[Tenant, SandboxServer], tmp_path: Path
) -> None:
    tenant, server = sandbox
    app = typer.Typer()
    register(app)
    env = {
        "SPINDEX_DATA_DIR": str(tmp_path / "data"),
        "SPINDEX_GRAPH__AUTH": "sandbox",
        "SPINDEX_GRAPH__BASE_URL": server.graph_url,
        "SPINDEX_GRAPH__TENANT_ID": tenant.tenant_id,
        "SPINDEX_GRAPH__SHAREPOINT_URL": server.base_url,
    }
    runner = CliRunner()
    passing = runner.invoke(app, ["doctor"], env=env)
    assert passing.exit_code == 0, passing.output
    assert "all checks passed" in passing.stdout and "FAIL" not in passing.stdout

    server.granted_permissions = set(ALL_PERMISSIONS) - {"GroupMember.Read.All"}
    failing = runner.invoke(app, ["doctor"], env=env)
    assert failing.exit_code == 1
    (line,) = [line for line in failing.stdout.splitlines() if line.startswith("FAIL")]
    assert "GroupMember.Read.All" in line and "give admin consent" in line

    broken = runner.invoke(app, ["doctor"], env={**env, "SPINDEX_EMBEDDING__PROVIDER": "bogus"})
    assert broken.exit_code == 2
    assert "embedding.provider" in broken.stdout

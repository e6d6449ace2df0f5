"""Each authentication mode builds the credential it names, and a missing setting is named.

Defends: `graph.auth` modes `sandbox`, `client_secret`, `certificate`, `managed_identity`,
`workload_identity` and `azure_cli` each give the azure-identity (or sandbox) credential they
name, built without any network call; a user-assigned managed identity and the Azure CLI are
asked for the identity and tenant configured (checked against a local managed-identity endpoint
and a stand-in `az` executable, the same interfaces Container Apps and the CLI offer); the
Azure services' credential (`azure.auth`) follows the same rules; a missing or invalid setting
is a ConfigError that names it, and never quotes a secret.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.identity import aio as identity_aio

import azure.identity as identity_sync
from ingest.config import GRAPH_SCOPE, AzureSettings, GraphSettings, load_settings
from ingest.errors import ConfigError
from ingest.graph.auth import SandboxCredential, build_azure_credential, build_graph_credential

TENANT = "11111111-2222-3333-4444-555555555555"
CLIENT = "66666666-7777-8888-9999-000000000000"
SECRET = "s3cr3t-value-not-to-be-quoted"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("SPINDEX_", "AZURE_", "IDENTITY_", "MSI_", "IMDS_")):
            monkeypatch.delenv(name)


def graph(**values: Any) -> GraphSettings:
    return GraphSettings(**values)


# -- sandbox and secrets --------------------------------------------------------------------


def test_sandbox_mode_signs_in_to_a_loopback_token_endpoint_only() -> None:
    credential = build_graph_credential(graph(auth="sandbox", base_url="http://127.0.0.1:8123/v1.0", tenant_id=TENANT))
    assert isinstance(credential, SandboxCredential)
    with pytest.raises(ConfigError, match="127.0.0.1"):
        build_graph_credential(graph(auth="sandbox", token_url="https://login.example.com/token"))


def test_client_secret_mode_builds_a_client_secret_credential() -> None:
    credential = build_graph_credential(graph(auth="client_secret", tenant_id=TENANT, client_id=CLIENT, client_secret=SECRET))
    assert isinstance(credential, identity_aio.ClientSecretCredential)
    assert credential._client._tenant_id == TENANT and credential._client._client_id == CLIENT


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"client_id": CLIENT, "client_secret": SECRET}, "graph.tenant_id"),
        ({"tenant_id": TENANT, "client_secret": SECRET}, "graph.client_id"),
        ({"tenant_id": TENANT, "client_id": CLIENT}, "graph.client_secret"),
    ],
)
def test_client_secret_mode_names_the_missing_setting(values: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_graph_credential(graph(auth="client_secret", **values))
    message = str(caught.value)
    assert named in message and "SPINDEX_" + named.upper().replace(".", "__") in message
    assert SECRET not in message


# -- certificate ----------------------------------------------------------------------------


def _pem(path: Path) -> Path:
    """A self-signed certificate with its private key, as one PEM file."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "spindex-test")])
    now = datetime.now(timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.write_bytes(key_pem + cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_certificate_mode_loads_the_pem_file(tmp_path: Path) -> None:
    pem = _pem(tmp_path / "spindex.pem")
    credential = build_graph_credential(graph(auth="certificate", tenant_id=TENANT, client_id=CLIENT, certificate_path=pem))
    assert isinstance(credential, identity_aio.CertificateCredential)
    assert credential._client._tenant_id == TENANT and credential._client._client_id == CLIENT


def test_certificate_mode_names_a_missing_or_invalid_certificate(tmp_path: Path) -> None:
    base = {"auth": "certificate", "tenant_id": TENANT, "client_id": CLIENT}
    with pytest.raises(ConfigError, match="graph.certificate_path is required"):
        build_graph_credential(graph(**base))
    with pytest.raises(ConfigError, match="graph.certificate_path: no file at"):
        build_graph_credential(graph(**base, certificate_path=tmp_path / "absent.pem"))
    garbage = tmp_path / "not-a-cert.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigError, match="graph.certificate_path: .* is not a PEM certificate"):
        build_graph_credential(graph(**base, certificate_path=garbage))


# -- managed identity, against a local endpoint of the App Service / Container Apps kind ------


class IdentityEndpoint:
    """`IDENTITY_ENDPOINT` as Container Apps and App Service serve it: records each token request."""

    def __init__(self) -> None:
        self.requests: list[dict[str, list[str]]] = []
        self.headers: list[dict[str, str]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                query = parse_qs(urlsplit(self.path).query)
                endpoint.requests.append(query)
                endpoint.headers.append({k.lower(): v for k, v in self.headers.items()})
                body = json.dumps({
                    "access_token": "mi-token", "expires_on": str(int(time.time()) + 3600),
                    "resource": query.get("resource", [""])[0], "token_type": "Bearer",
                }).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/msi/token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def identity_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[IdentityEndpoint]:
    endpoint = IdentityEndpoint()
    monkeypatch.setenv("IDENTITY_ENDPOINT", endpoint.url)
    monkeypatch.setenv("IDENTITY_HEADER", "header-from-the-platform")
    yield endpoint
    endpoint.close()


async def test_user_assigned_managed_identity_asks_for_its_client_id(identity_endpoint: IdentityEndpoint) -> None:
    credential = build_graph_credential(graph(auth="managed_identity", client_id=CLIENT))
    assert isinstance(credential, identity_aio.ManagedIdentityCredential)
    async with credential:
        token = await credential.get_token(GRAPH_SCOPE)
    assert token.token == "mi-token"
    request = identity_endpoint.requests[-1]
    assert request["client_id"] == [CLIENT]
    assert request["resource"] == ["https://graph.microsoft.com"]
    assert identity_endpoint.headers[-1]["x-identity-header"] == "header-from-the-platform"


async def test_system_assigned_managed_identity_names_no_client(identity_endpoint: IdentityEndpoint) -> None:
    credential = build_graph_credential(graph(auth="managed_identity"))
    async with credential:
        await credential.get_token(GRAPH_SCOPE)
    assert "client_id" not in identity_endpoint.requests[-1]


# -- workload identity ----------------------------------------------------------------------


def test_workload_identity_reads_the_federated_token_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    token_file = tmp_path / "azure-identity-token"
    token_file.write_text("federated-jwt")
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token_file))
    credential = build_graph_credential(graph(auth="workload_identity", tenant_id=TENANT, client_id=CLIENT))
    assert isinstance(credential, identity_aio.WorkloadIdentityCredential)
    assert credential._token_file_path == str(token_file)
    assert credential._client._tenant_id == TENANT and credential._client._client_id == CLIENT
    # As AKS and Container Apps inject them, the ids may come from the environment instead.
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT)
    from_env = build_graph_credential(graph(auth="workload_identity"))
    assert from_env._client._client_id == CLIENT


def test_workload_identity_names_what_is_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="AZURE_FEDERATED_TOKEN_FILE"):
        build_graph_credential(graph(auth="workload_identity", tenant_id=TENANT, client_id=CLIENT))
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(tmp_path / "token"))
    with pytest.raises(ConfigError, match="graph.client_id"):
        build_graph_credential(graph(auth="workload_identity", tenant_id=TENANT))


# -- Azure CLI, against a stand-in `az` -----------------------------------------------------


@pytest.fixture
def fake_az(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An `az` on PATH that records its arguments and prints a token as `az account get-access-token` does."""
    folder = tmp_path / "bin"
    folder.mkdir()
    record = tmp_path / "az-args.json"
    script = folder / "az"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, sys, time\n"
        f"open({str(record)!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
        "print(json.dumps({'accessToken': 'cli-token', 'expires_on': int(time.time()) + 3600, 'tokenType': 'Bearer'}))\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ.get('PATH', '')}")
    return record


async def test_azure_cli_mode_asks_the_cli_for_the_configured_tenant(fake_az: Path) -> None:
    credential = build_graph_credential(graph(auth="azure_cli", tenant_id=TENANT))
    assert isinstance(credential, identity_aio.AzureCliCredential)
    token = await credential.get_token(GRAPH_SCOPE)
    assert token.token == "cli-token"
    args = json.loads(fake_az.read_text())
    assert args[:2] == ["account", "get-access-token"]
    assert args[args.index("--tenant") + 1] == TENANT
    assert args[args.index("--resource") + 1] == "https://graph.microsoft.com"


# -- configuration --------------------------------------------------------------------------


def test_an_unknown_mode_is_named_by_its_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPINDEX_GRAPH__AUTH", "password")
    with pytest.raises(ConfigError, match="graph.auth") as caught:
        load_settings()
    assert "SPINDEX_GRAPH__AUTH" in str(caught.value)


def test_workload_identity_is_a_graph_auth_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPINDEX_GRAPH__AUTH", "workload_identity")
    assert load_settings().graph.auth == "workload_identity"


# -- Azure AI Search, Blob Storage, Azure OpenAI --------------------------------------------


def test_azure_services_default_to_default_azure_credential() -> None:
    assert isinstance(build_azure_credential(AzureSettings()), identity_aio.DefaultAzureCredential)
    assert isinstance(build_azure_credential(AzureSettings(), asynchronous=False), identity_sync.DefaultAzureCredential)


async def test_azure_services_use_the_configured_managed_identity(identity_endpoint: IdentityEndpoint) -> None:
    explicit = build_azure_credential(AzureSettings(auth="managed_identity", client_id=CLIENT))
    assert isinstance(explicit, identity_aio.ManagedIdentityCredential)
    async with explicit:
        await explicit.get_token("https://search.azure.com/.default")
    assert identity_endpoint.requests[-1]["client_id"] == [CLIENT]
    assert identity_endpoint.requests[-1]["resource"] == ["https://search.azure.com"]
    # DefaultAzureCredential reaches the same identity when azure.client_id names it.
    default = build_azure_credential(AzureSettings(client_id=CLIENT), asynchronous=False)
    default.get_token("https://storage.azure.com/.default")
    default.close()
    assert identity_endpoint.requests[-1]["client_id"] == [CLIENT]


async def test_azure_services_share_the_graph_managed_identity_unless_told_otherwise(
    identity_endpoint: IdentityEndpoint,
) -> None:
    graph_identity = graph(auth="managed_identity", client_id=CLIENT)
    shared = build_azure_credential(AzureSettings(auth="managed_identity"), graph=graph_identity)
    async with shared:
        await shared.get_token("https://cognitiveservices.azure.com/.default")
    assert identity_endpoint.requests[-1]["client_id"] == [CLIENT]
    other = "abababab-abab-abab-abab-abababababab"
    own = build_azure_credential(AzureSettings(auth="managed_identity", client_id=other), graph=graph_identity)
    async with own:
        await own.get_token("https://cognitiveservices.azure.com/.default")
    assert identity_endpoint.requests[-1]["client_id"] == [other]
    # A Graph app registration's client id is not an identity of the Azure services.
    app = build_azure_credential(AzureSettings(auth="managed_identity"), graph=graph(auth="certificate", client_id=CLIENT))
    async with app:
        await app.get_token("https://search.azure.com/.default")
    assert "client_id" not in identity_endpoint.requests[-1]


def test_azure_services_workload_identity_and_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="AZURE_FEDERATED_TOKEN_FILE"):
        build_azure_credential(AzureSettings(auth="workload_identity"))
    token_file = tmp_path / "token"
    token_file.write_text("jwt")
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token_file))
    with pytest.raises(ConfigError, match="AZURE_TENANT_ID"):
        build_azure_credential(AzureSettings(auth="workload_identity", client_id=CLIENT))
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    workload = build_azure_credential(AzureSettings(auth="workload_identity", client_id=CLIENT))
    assert isinstance(workload, identity_aio.WorkloadIdentityCredential)
    assert workload._client._client_id == CLIENT
    assert isinstance(build_azure_credential(AzureSettings(auth="azure_cli")), identity_aio.AzureCliCredential)

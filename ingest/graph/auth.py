"""Credentials for Microsoft Graph and for the Azure services spindex writes to.

Graph (`graph.auth`): azure-identity covers every production mode, so msal is not called
directly: `client_secret`, `certificate` (a PEM file with its private key; SharePoint REST
app-only accepts only certificate-based tokens), `managed_identity` (user-assigned when
`graph.client_id` is set), `workload_identity` (the federated token file that AKS and Container
Apps mount, AZURE_FEDERATED_TOKEN_FILE) and `azure_cli`. The `sandbox` mode signs in to the
local sandbox tenant with the same client-credentials form post that Entra ID takes, over http
on 127.0.0.1 only.

Azure AI Search, Blob Storage and Azure OpenAI take a key when one is configured, and otherwise
the Entra ID credential of `azure.auth` (`build_azure_credential`).

Building a credential never touches the network: azure-identity defers every request to the
first `get_token`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
from azure.core.credentials import AccessToken

from ingest.config import AzureSettings, GraphSettings
from ingest.errors import AuthError, ConfigError, SourceUnavailable

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class SandboxCredential:
    """An async TokenCredential for the sandbox tenant's token endpoint."""

    def __init__(self, token_url: str, client_id: str, client_secret: str) -> None:
        host = urlparse(token_url).hostname or ""
        if host not in LOOPBACK_HOSTS:
            raise ConfigError("sandbox auth only talks to a token endpoint on 127.0.0.1")
        self._token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._token: AccessToken | None = None

    async def get_token(self, *scopes: str, **_: object) -> AccessToken:
        """A bearer token, fetched again shortly before the cached one expires."""
        if self._token is not None and self._token.expires_on - 60 > time.time():
            return self._token
        form = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._client_secret,
            "scope": " ".join(scopes) or "https://graph.microsoft.com/.default",
        }
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                response = await http.post(self._token_url, data=form)
        except httpx.HTTPError as exc:
            raise SourceUnavailable(f"sandbox token endpoint unreachable ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise AuthError(f"sandbox refused the client credentials (HTTP {response.status_code})")
        body = response.json()
        self._token = AccessToken(body["access_token"], int(time.time()) + int(body.get("expires_in", 3600)))
        return self._token

    async def close(self) -> None:
        """Nothing to release; present for the TokenCredential protocol."""


def sandbox_token_url(settings: GraphSettings) -> str:
    """The sandbox's token endpoint, derived from the Graph base URL unless set explicitly."""
    if settings.token_url:
        return settings.token_url
    root = settings.base_url.removesuffix("/v1.0")
    return f"{root}/{settings.tenant_id or 'sandbox'}/oauth2/v2.0/token"


def _required(value: str | None, setting: str, mode: str, *, env: str | None = None) -> str:
    """`value`, or a ConfigError naming the setting (and its environment variable)."""
    if value:
        return value
    variable = env or "SPINDEX_" + setting.upper().replace(".", "__")
    raise ConfigError(f"{setting} is required for graph.auth={mode} (set {variable})")


def _certificate_credential(settings: GraphSettings, tenant_id: str, client_id: str) -> Any:
    from azure.identity.aio import CertificateCredential

    path = settings.certificate_path
    if path is None:
        raise ConfigError("graph.certificate_path is required for graph.auth=certificate (set SPINDEX_GRAPH__CERTIFICATE_PATH)")
    if not Path(path).is_file():
        raise ConfigError(f"graph.certificate_path: no file at {path}")
    try:
        return CertificateCredential(tenant_id, client_id, str(path))
    except ValueError:
        # The library's message may quote the file; the path and the expected form say enough.
        raise ConfigError(
            f"graph.certificate_path: {path} is not a PEM certificate with its private key (unencrypted)"
        ) from None


def build_graph_credential(settings: GraphSettings) -> object:
    """The async credential for the configured `graph.auth` mode, built without any network call.

    Raises ConfigError naming the missing or invalid setting.
    """
    mode = settings.auth
    if mode == "sandbox":
        secret = settings.client_secret.get_secret_value() if settings.client_secret else "sandbox-secret"
        return SandboxCredential(sandbox_token_url(settings), settings.client_id or "sandbox-client", secret)
    from azure.identity.aio import (
        AzureCliCredential,
        ClientSecretCredential,
        ManagedIdentityCredential,
        WorkloadIdentityCredential,
    )

    if mode == "managed_identity":
        return ManagedIdentityCredential(client_id=settings.client_id) if settings.client_id else ManagedIdentityCredential()
    if mode == "azure_cli":
        return AzureCliCredential(tenant_id=settings.tenant_id)
    if mode == "workload_identity":
        return WorkloadIdentityCredential(
            tenant_id=_required(settings.tenant_id or os.environ.get("AZURE_TENANT_ID"), "graph.tenant_id", mode),
            client_id=_required(settings.client_id or os.environ.get("AZURE_CLIENT_ID"), "graph.client_id", mode),
            token_file_path=_required(
                os.environ.get("AZURE_FEDERATED_TOKEN_FILE"), "AZURE_FEDERATED_TOKEN_FILE", mode, env="AZURE_FEDERATED_TOKEN_FILE"
            ),
        )
    tenant_id = _required(settings.tenant_id, "graph.tenant_id", mode)
    client_id = _required(settings.client_id, "graph.client_id", mode)
    if mode == "client_secret":
        if settings.client_secret is None:
            raise ConfigError("graph.client_secret is required for graph.auth=client_secret (set SPINDEX_GRAPH__CLIENT_SECRET)")
        return ClientSecretCredential(tenant_id, client_id, settings.client_secret.get_secret_value())
    return _certificate_credential(settings, tenant_id, client_id)


def build_azure_credential(
    settings: AzureSettings, *, graph: GraphSettings | None = None, asynchronous: bool = True
) -> Any:
    """The Entra ID credential for Azure AI Search, Blob Storage and Azure OpenAI (`azure.auth`).

    Without `azure.client_id`, a Graph managed or workload identity named by `graph.client_id`
    is used here too, so one user-assigned identity serves every service. Async
    (`azure.identity.aio`) unless `asynchronous` is False, for SDK clients that take a sync one
    (the openai SDK's bearer token provider). Built without any network call; the caller closes it.
    """
    client_id = settings.client_id
    if client_id is None and graph is not None and graph.auth in ("managed_identity", "workload_identity"):
        client_id = graph.client_id
    if asynchronous:
        from azure.identity import aio as identity
    else:
        import azure.identity as identity  # type: ignore[no-redef]
    mode = settings.auth
    if mode == "managed_identity":
        return identity.ManagedIdentityCredential(client_id=client_id) if client_id else identity.ManagedIdentityCredential()
    if mode == "workload_identity":
        if not os.environ.get("AZURE_FEDERATED_TOKEN_FILE"):
            raise ConfigError("AZURE_FEDERATED_TOKEN_FILE is required for azure.auth=workload_identity")
        kwargs = {"client_id": client_id} if client_id else {}
        try:
            return identity.WorkloadIdentityCredential(**kwargs)
        except ValueError:
            raise ConfigError(
                "azure.auth=workload_identity needs AZURE_TENANT_ID and azure.client_id (or AZURE_CLIENT_ID)"
            ) from None
    if mode == "azure_cli":
        return identity.AzureCliCredential()
    if client_id:
        return identity.DefaultAzureCredential(managed_identity_client_id=client_id, workload_identity_client_id=client_id)
    return identity.DefaultAzureCredential()

"""Credentials for Microsoft Graph.

Production modes use azure-identity (client secret, certificate, managed identity, Azure CLI).
The `sandbox` mode signs in to the local sandbox tenant with the same client-credentials form
post that Entra ID takes, over http on 127.0.0.1 only.
"""

from __future__ import annotations

import time
from urllib.parse import urlparse

import httpx
from azure.core.credentials import AccessToken

from ingest.config import GraphSettings
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


def build_graph_credential(settings: GraphSettings) -> object:
    """The credential for the configured `graph.auth` mode, built without any network call."""
    mode = settings.auth
    if mode == "sandbox":
        secret = settings.client_secret.get_secret_value() if settings.client_secret else "sandbox-secret"
        return SandboxCredential(sandbox_token_url(settings), settings.client_id or "sandbox-client", secret)
    from azure.identity.aio import (
        AzureCliCredential,
        CertificateCredential,
        ClientSecretCredential,
        ManagedIdentityCredential,
    )

    if mode == "managed_identity":
        return ManagedIdentityCredential(client_id=settings.client_id) if settings.client_id else ManagedIdentityCredential()
    if mode == "azure_cli":
        return AzureCliCredential(tenant_id=settings.tenant_id)
    if not settings.tenant_id or not settings.client_id:
        raise ConfigError(f"graph.tenant_id and graph.client_id are required for graph.auth={mode}")
    if mode == "client_secret":
        if settings.client_secret is None:
            raise ConfigError("graph.client_secret is required for graph.auth=client_secret")
        return ClientSecretCredential(settings.tenant_id, settings.client_id, settings.client_secret.get_secret_value())
    if settings.certificate_path is None:
        raise ConfigError("graph.certificate_path is required for graph.auth=certificate")
    return CertificateCredential(settings.tenant_id, settings.client_id, str(settings.certificate_path))

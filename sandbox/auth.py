"""The sandbox's stand-in for Entra ID: client credentials in, opaque bearer tokens out.

    POST /{tenantId}/oauth2/v2.0/token        grant_type=client_credentials, client_id,
                                              client_secret (or a JWT client_assertion), scope
    GET  /{tenantId}/v2.0/.well-known/openid-configuration

The tenant segment may be the tenant id, `<name>.onmicrosoft.com`, or the alias `sandbox` (for a
client that does not know the tenant id). Certificate assertions are accepted for a known
client id without checking the signature.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from urllib.parse import parse_qsl

from sandbox.http_types import Response, json_response
from sandbox.tenant import Tenant

DEFAULT_CLIENT_ID = "sandbox-client"
DEFAULT_CLIENT_SECRET = "sandbox-secret"
TOKEN_LIFETIME_S = 3600
_JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _oauth_error(status: int, error: str, description: str) -> Response:
    return json_response(status, {"error": error, "error_description": description})


class TokenIssuer:
    """Issues and checks bearer tokens for one tenant. Thread-safe."""

    def __init__(self, tenant: Tenant, credentials: dict[str, str] | None = None) -> None:
        self.tenant = tenant
        self.credentials = dict(credentials or {DEFAULT_CLIENT_ID: DEFAULT_CLIENT_SECRET})
        self._tokens: set[str] = set()
        self._lock = threading.Lock()

    def issue(self) -> str:
        """A fresh bearer token."""
        token = "sbx." + secrets.token_urlsafe(24)
        with self._lock:
            self._tokens.add(token)
        return token

    def revoke_all(self) -> None:
        """Invalidate every token issued so far."""
        with self._lock:
            self._tokens.clear()

    def valid(self, authorization: str) -> bool:
        """True for an `Authorization` header of `Bearer <a token issued here>`."""
        scheme, _, token = authorization.partition(" ")
        with self._lock:
            return scheme.lower() == "bearer" and token.strip() in self._tokens

    def knows_tenant(self, segment: str) -> bool:
        """True when a URL's tenant segment names this tenant."""
        short = self.tenant.hostname.split(".")[0]
        return segment.lower() in (self.tenant.tenant_id.lower(), f"{short}.onmicrosoft.com", "sandbox")

    def token_response(self, tenant_segment: str, form_body: bytes) -> Response:
        """Answer a token request; error bodies never echo the secret that was sent."""
        if not self.knows_tenant(tenant_segment):
            return _oauth_error(400, "invalid_request", f"AADSTS90002: Tenant '{tenant_segment}' not found.")
        form = dict(parse_qsl(form_body.decode("utf-8", errors="replace"), keep_blank_values=True))
        if form.get("grant_type") != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type", "AADSTS70003: the sandbox supports client_credentials only.")
        client_id = form.get("client_id", "")
        expected = self.credentials.get(client_id)
        secret_ok = expected is not None and hmac.compare_digest(form.get("client_secret", ""), expected)
        assertion_ok = (
            expected is not None and form.get("client_assertion_type") == _JWT_BEARER and bool(form.get("client_assertion"))
        )
        if not (secret_ok or assertion_ok):
            return _oauth_error(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
        return json_response(
            200,
            {
                "token_type": "Bearer",
                "expires_in": TOKEN_LIFETIME_S,
                "ext_expires_in": TOKEN_LIFETIME_S,
                "access_token": self.issue(),
            },
        )

    def openid_configuration(self, base_url: str, tenant_segment: str) -> Response:
        """The discovery document an OAuth client may fetch first."""
        if not self.knows_tenant(tenant_segment):
            return _oauth_error(400, "invalid_tenant", f"AADSTS90002: Tenant '{tenant_segment}' not found.")
        root = f"{base_url}/{tenant_segment}"
        return json_response(
            200,
            {
                "issuer": f"{root}/v2.0",
                "token_endpoint": f"{root}/oauth2/v2.0/token",
                "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
                "response_types_supported": ["token"],
            },
        )

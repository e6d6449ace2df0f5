"""SharePoint REST transport, for what Graph v1.0 cannot tell: the members of site groups.

`GET {site}/_api/web/sitegroups/getbyid({n})/users` lists a site group's members as login
claims. App-only calls need a certificate credential in production (a client secret gets 401).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import httpx

from ingest.errors import AuthError, PermissionsUnreadable, SourceUnavailable
from ingest.retry import Retrier


class SiteGroupUnreadable(PermissionsUnreadable):
    """A site group's members could not be read: items it grants are not searchable."""

    reason = "site_group_unreadable"


class SharePointRest:
    """A small async client for the SharePoint REST endpoints spindex reads."""

    def __init__(self, credential: Any, *, base_url_override: str | None = None, retrier: Retrier | None = None) -> None:
        self._credential = credential
        self._override = base_url_override.rstrip("/") if base_url_override else None
        self._http = httpx.AsyncClient(timeout=30)
        self.retrier = retrier or Retrier()
        self.requests = 0

    def _url(self, site_web_url: str, path: str) -> tuple[str, str]:
        parsed = urlparse(site_web_url)
        resource = f"{parsed.scheme}://{parsed.netloc}"
        base = self._override or resource
        return f"{base}{parsed.path.rstrip('/')}/_api/{path}", resource

    async def _token(self, resource: str) -> str:
        result = self._credential.get_token(f"{resource}/.default")
        if hasattr(result, "__await__"):
            result = await result
        return result.token

    async def site_group_users(self, site_web_url: str, group_id: str) -> list[dict[str, Any]]:
        """The members of one site group: `{Id, LoginName, Title, PrincipalType, Email}` each."""
        if not group_id.isdigit():
            raise SiteGroupUnreadable(f"site group id {group_id!r} is not numeric")
        url, resource = self._url(site_web_url, f"web/sitegroups/getbyid({group_id})/users")
        token = await self._token(resource)
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json;odata=nometadata"}
        users: list[dict[str, Any]] = []
        while url:
            response = await self._get(url, headers)
            if response.status_code == 401:
                raise AuthError("SharePoint REST refused the token (HTTP 401): app-only SharePoint REST needs a certificate credential")
            if response.status_code != 200:
                raise SiteGroupUnreadable(f"members of site group {group_id} unreadable (HTTP {response.status_code})")
            body = response.json()
            users.extend(body.get("value", []))
            url = body.get("odata.nextLink") or body.get("@odata.nextLink") or ""
        return users

    async def _get(self, url: str, headers: dict[str, str]) -> httpx.Response:
        async def call() -> httpx.Response:
            self.requests += 1
            response = await self._http.get(url, headers=headers)
            if response.status_code in (429, 503):
                raise _Retryable(response)
            return response

        try:
            return await self.retrier.run(call, _classify)
        except _Retryable as exc:
            return exc.response
        except httpx.HTTPError as exc:
            raise SourceUnavailable(f"SharePoint REST unreachable ({type(exc).__name__})") from None

    async def close(self) -> None:
        """Release the HTTP connections."""
        await self._http.aclose()


class _Retryable(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def _classify(exc: BaseException) -> tuple[int | None, dict[str, str] | None] | None:
    if isinstance(exc, _Retryable):
        return exc.response.status_code, dict(exc.response.headers)
    if isinstance(exc, httpx.TransportError):
        return None, None
    return None

"""Microsoft Graph transport: the msgraph-sdk client, paging, retries and error mapping.

This module knows URLs, tokens, pages of results and HTTP statuses; what a drive, a page or a
change means is `ingest/source.py`'s business. Every call goes through `_call`, the one place
that applies the retry policy and maps an HTTP status to a spindex exception.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, urlparse

import httpx
from kiota_abstractions.api_error import APIError
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from kiota_http.middleware.options import RetryHandlerOption, UserAgentHandlerOption

from ingest.budget import GraphBudget, graph_request_cost
from ingest.config import GRAPH_SCOPE, GraphSettings
from ingest.errors import (
    AuthError,
    ItemUnavailable,
    PermissionsUnreadable,
    ResyncRequired,
    SourceUnavailable,
    SpindexError,
)
from ingest.graph.directory import GRAPH_BATCH_MAX, DirectoryReads
from ingest.graph.drive_items import DELTA_SELECT, DriveEntry, drive_entry
from ingest.graph.sdk_models import lighten_entity_parsing, parse_permissions
from ingest.retry import Retrier, retry_delay

T = TypeVar("T")

USER_AGENT_PRODUCT = "NONISV|spindex|spindex"  # traffic decoration the SharePoint throttling guide asks for
USER_AGENT_VERSION = "0.1"
# A download URL lives "a few minutes"; these answers mean it lapsed: ask `/content` instead.
_STALE_DOWNLOAD_URL = frozenset({401, 403, 404, 410})
# `hierarchicalsharing`: a `shared` facet only where a permission hierarchy starts (or sharing
# changed), so an item without one inherits its parent's permissions (ingest/acl_scopes.py).
SHARING_PREFER = "hierarchicalsharing, deltashowremovedasdeleted, deltatraversepermissiongaps, deltashowsharingchanges"


@dataclass(slots=True)
class GraphStats:
    """Graph traffic of one run, for the run report."""

    requests: Counter[str] = field(default_factory=Counter)
    bytes_downloaded: int = 0
    resource_units: int = 0  # as costed by ingest.budget, every attempt included
    budget_wait_s: float = 0.0

    def as_dict(self, throttled: int, retries: int) -> dict[str, object]:
        """The counters as plain JSON values."""
        return {
            "requests": dict(sorted(self.requests.items())),
            "requests_total": sum(self.requests.values()),
            "throttled": throttled,
            "retries": retries,
            "bytes_downloaded": self.bytes_downloaded,
            "resource_units": self.resource_units,
            "budget_wait_s": round(self.budget_wait_s, 3),
        }


@dataclass(frozen=True, slots=True)
class DeltaPage:
    """One page of a drive's delta feed: items, and either the next link or the delta link."""

    items: list[DriveEntry]
    next_link: str | None
    delta_link: str | None
    hierarchical: bool = False  # asked with `Prefer: hierarchicalsharing`: no `shared` facet means inherited


def _classify(exc: BaseException) -> tuple[int | None, Mapping[str, object] | None] | None:
    if isinstance(exc, APIError):
        return exc.response_status_code, exc.response_headers
    if isinstance(exc, (httpx.TransportError, TimeoutError)):
        return None, None
    return None


def _error_message(response: httpx.Response) -> str:
    """"code: message" of a Graph error answer, or its HTTP status."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if not isinstance(error, dict):
        error = {}
    code, message = error.get("code"), error.get("message")
    return f"{code}: {message}" if code else str(message or f"HTTP {response.status_code}")


def _graph_message(exc: APIError) -> str:
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    message = getattr(error, "message", None) or exc.message or ""
    return f"{code}: {message}" if code else message


class GraphClient(DirectoryReads):
    """A msgraph-sdk client bound to one Graph endpoint, with spindex's retry policy.

    With a `budget`, every request waits for its resource units before it is sent.
    """

    def __init__(
        self,
        settings: GraphSettings,
        credential: object,
        *,
        retrier: Retrier | None = None,
        budget: GraphBudget | None = None,
    ) -> None:
        from msgraph import GraphServiceClient
        from msgraph.graph_request_adapter import GraphRequestAdapter
        from msgraph_core import GraphClientFactory

        lighten_entity_parsing()

        host = urlparse(settings.base_url).hostname or "graph.microsoft.com"
        self._auth = AzureIdentityAuthenticationProvider(
            credential, scopes=[GRAPH_SCOPE], allowed_hosts=[host]
        )
        options = {
            # The SDK's own retry loop is switched off: `Retrier` is the one policy.
            RetryHandlerOption.get_key(): RetryHandlerOption(max_retries=0, should_retry=False),
            UserAgentHandlerOption.get_key(): UserAgentHandlerOption(
                product_name=USER_AGENT_PRODUCT, product_version=USER_AGENT_VERSION
            ),
        }
        http = GraphClientFactory.create_with_default_middleware(options=options)
        self.adapter = GraphRequestAdapter(self._auth, client=http)
        self.adapter.base_url = settings.base_url
        self.sdk = GraphServiceClient(request_adapter=self.adapter)
        self.settings = settings
        self.retrier = retrier or Retrier()
        self.budget = budget
        self.stats = GraphStats()
        self._credential = credential
        self._plain_http: httpx.AsyncClient | None = None

    async def _call(
        self,
        kind: str,
        call: Callable[[], Awaitable[T]],
        *,
        item: str | None = None,
        cost: str | None = None,
        count: int = 1,
    ) -> T:
        """Run one Graph request under the retry policy; map its final failure to our errors.

        Each attempt first waits for the RU of `count` requests of kind `cost` (default:
        `kind`; see ingest.budget), so the budget also covers retries.
        """

        async def counted() -> T:
            self.stats.requests[kind] += 1
            await self._spend(cost or kind, count)
            return await call()

        try:
            return await self.retrier.run(counted, _classify)
        except APIError as exc:
            raise self._map_error(exc, kind, item) from None
        except (httpx.TransportError, TimeoutError) as exc:
            raise SourceUnavailable(f"Graph unreachable during {kind} ({type(exc).__name__})") from None

    async def _spend(self, cost: str, count: int) -> None:
        """Wait for the budget (if any) and count the resource units the request costs."""
        if self.budget is None:
            self.stats.resource_units += graph_request_cost(cost) * count
            return
        before = self.budget.waited_s
        self.stats.resource_units += await self.budget.acquire(cost, count)
        self.stats.budget_wait_s += self.budget.waited_s - before

    def _map_error(self, exc: APIError, kind: str, item: str | None) -> SpindexError:
        status = exc.response_status_code or 0
        message = _graph_message(exc)
        what = f"{kind} {item}" if item else kind
        if status == 410:
            return ResyncRequired(f"delta link no longer valid ({message or 'resyncRequired'})")
        if status == 401:
            return AuthError(f"Graph refused the credentials (HTTP 401 on {kind}): check graph.client_id and its secret or certificate")
        if kind == "permissions":  # any final failure: fail closed for this item
            return PermissionsUnreadable(f"permissions of {item} unreadable (HTTP {status})")
        if status == 403:
            return AuthError(f"Graph denied {what} (HTTP 403: {message}); grant the app the permission named there")
        if status == 404 and item is not None:
            return ItemUnavailable(f"{what} not found (HTTP 404)")
        if status in (429, 503):
            return SourceUnavailable(f"Graph kept throttling {what} (HTTP {status}) after retries")
        return SourceUnavailable(f"Graph failed on {what} (HTTP {status}: {message})")

    # -- sites and drives ---------------------------------------------------------------------

    async def site(self, site: str) -> Any:
        """A site by Graph id (`host,guid,guid`) or by `hostname:/sites/path`."""
        from msgraph.generated.sites.item.site_item_request_builder import SiteItemRequestBuilder

        if ":/" in site:
            host, path = site.split(":", 1)
            builder = SiteItemRequestBuilder(self.adapter, f"{self.settings.base_url}/sites/{host}:{path}")
        else:
            builder = self.sdk.sites.by_site_id(site)
        return await self._call("site", builder.get)

    async def all_sites(self) -> AsyncIterator[Any]:
        """Every site of the tenant (`getAllSites`, application permission), page by page."""
        builder = self.sdk.sites.get_all_sites
        response = await self._call("site", builder.get, cost="site_list")
        while True:
            for site in response.value or []:
                yield site
            if not response.odata_next_link:
                return
            link = response.odata_next_link
            response = await self._call("site", lambda: builder.with_url(link).get(), cost="site_list")

    async def drives(self, site_id: str, *, include_system: bool) -> list[Any]:
        """A site's document libraries; with `include_system`, hidden ones such as Site Pages."""
        from msgraph.generated.sites.item.drives.drives_request_builder import DrivesRequestBuilder

        select = ["id", "name", "webUrl", "driveType"] + (["system"] if include_system else [])
        query = DrivesRequestBuilder.DrivesRequestBuilderGetQueryParameters(select=select)
        config = RequestConfiguration(query_parameters=query)
        builder = self.sdk.sites.by_site_id(site_id).drives
        response = await self._call("drive", lambda: builder.get(request_configuration=config), cost="drive_list")
        drives = list(response.value or [])
        while response.odata_next_link:
            link = response.odata_next_link
            response = await self._call("drive", lambda: builder.with_url(link).get(), cost="drive_list")
            drives.extend(response.value or [])
        return drives

    # -- drive items ----------------------------------------------------------------------------

    async def delta_page(self, drive_id: str, link: str | None, *, top: int, sharing_changes: bool = True) -> DeltaPage:
        """One page of `drive_id`'s delta: from the start when `link` is None, else from the link.

        Read as plain JSON (`drive_items.py`): delta lists every item of a library, and the
        SDK's model costs about a millisecond of CPU per item. Every page must carry `deleted`
        (in `DELTA_SELECT`), or deletes arrive unmarked; the pre-authenticated download URL
        saves the 302 hop of `/content` (platform-facts §6).
        """
        if link is None:
            select = quote(",".join(DELTA_SELECT), safe=",@.")
            url = f"{self.settings.base_url}/drives/{quote(drive_id, safe='')}/root/delta?$select={select}&$top={top}"
        else:
            url = self._graph_link(link)
        headers = {"Prefer": SHARING_PREFER} if sharing_changes else {}
        cost = "delta_initial" if link is None else "delta"
        call = functools.partial(self._json, "GET", url, headers=headers)
        page = await self._call("delta", call, item=drive_id, cost=cost)
        entries = [drive_entry(value) for value in page.get("value") or [] if isinstance(value, Mapping)]
        next_link, delta_link = page.get("@odata.nextLink"), page.get("@odata.deltaLink")
        return DeltaPage(
            entries,
            next_link if isinstance(next_link, str) else None,
            delta_link if isinstance(delta_link, str) else None,
            hierarchical=sharing_changes,
        )

    def _graph_link(self, link: str) -> str:
        """A next or delta link, if it points at Graph; ResyncRequired (start the library
        over) if not: the credential's token must never go anywhere else."""
        base, target = urlparse(self.settings.base_url), urlparse(link)
        if (target.scheme, target.netloc) != (base.scheme, base.netloc):
            raise ResyncRequired(f"a stored delta link points outside Graph ({target.netloc or link[:40]!r})")
        return link

    async def item(self, drive_id: str, item_id: str) -> DriveEntry:
        """One drive item (a folder spindex has not seen in delta, or a file looked up by id)."""
        url = f"{self.settings.base_url}/drives/{quote(drive_id, safe='')}/items/{quote(item_id, safe='')}"
        return drive_entry(await self._call("item", functools.partial(self._json, "GET", url), item=item_id))

    async def download(self, drive_id: str, item_id: str, *, url: str | None = None) -> bytes:
        """The file's bytes: from its pre-authenticated `url` when given and still valid, else
        through `/content` (Graph answers 302 to such a URL; the SDK follows it)."""
        data: bytes | None = None
        if url is not None:
            try:
                data = await self._call("download", lambda: self._get_bytes(url), item=item_id)
            except SourceUnavailable:
                data = None  # the URL's host kept failing: try the Graph route
        if data is None:
            builder = self.sdk.drives.by_drive_id(drive_id).items.by_drive_item_id(item_id).content
            data = await self._call("download", builder.get, item=item_id) or b""
        self.stats.bytes_downloaded += len(data)
        return data

    async def _get_bytes(self, url: str) -> bytes | None:
        """GET a pre-authenticated URL (no Authorization header: it must not leave Graph's
        host); None when the URL has lapsed, an APIError for a retryable failure."""
        response = await self._raw_http().get(url, headers={"User-Agent": f"{USER_AGENT_PRODUCT}/{USER_AGENT_VERSION}"})
        if response.status_code in _STALE_DOWNLOAD_URL:
            return None
        if response.status_code >= 400:
            error = APIError(f"HTTP {response.status_code}")
            error.response_status_code = response.status_code
            error.response_headers = dict(response.headers)
            raise error
        return response.content

    async def permissions(self, drive_id: str, item_id: str) -> list[Any]:
        """The item's permissions (every page); raises PermissionsUnreadable when they cannot be read."""
        builder = self.sdk.drives.by_drive_id(drive_id).items.by_drive_item_id(item_id).permissions
        response = await self._call("permissions", builder.get, item=item_id)
        permissions = list(response.value or [])
        while response.odata_next_link:
            link = response.odata_next_link
            response = await self._call("permissions", lambda: builder.with_url(link).get(), item=item_id)
            permissions.extend(response.value or [])
        return permissions

    async def site_page(self, site_id: str, page_id: str) -> Any:
        """A modern page with its canvas layout (sections, columns, web parts)."""
        from msgraph.generated.sites.item.pages.item.graph_site_page.graph_site_page_request_builder import (
            GraphSitePageRequestBuilder,
        )

        query = GraphSitePageRequestBuilder.GraphSitePageRequestBuilderGetQueryParameters(expand=["canvasLayout"])
        config = RequestConfiguration(query_parameters=query)
        builder = self.sdk.sites.by_site_id(site_id).pages.by_base_site_page_id(page_id).graph_site_page
        return await self._call("page", lambda: builder.get(request_configuration=config), item=page_id)

    async def site_page_titles(self, site_id: str) -> dict[str, str]:
        """Page id -> title for every modern page of a site, one listing instead of a call per page."""
        from msgraph.generated.sites.item.pages.graph_site_page.graph_site_page_request_builder import (
            GraphSitePageRequestBuilder,
        )

        query = GraphSitePageRequestBuilder.GraphSitePageRequestBuilderGetQueryParameters(select=["id", "title"])
        config = RequestConfiguration(query_parameters=query)
        builder = self.sdk.sites.by_site_id(site_id).pages.graph_site_page
        response = await self._call("page", lambda: builder.get(request_configuration=config), cost="page_list")
        titles = {p.id: p.title or "" for p in response.value or [] if p.id}
        while response.odata_next_link:
            link = response.odata_next_link
            response = await self._call("page", lambda: builder.with_url(link).get(), cost="page_list")
            titles.update({p.id: p.title or "" for p in response.value or [] if p.id})
        return titles

    async def batch_permissions(self, drive_id: str, item_ids: Sequence[str]) -> dict[str, list[Any] | SpindexError]:
        """Permissions of many items through `$batch` (20 per request), every sub-response checked.

        Throttled sub-requests are retried after the longest `Retry-After` among them; any
        other failure becomes PermissionsUnreadable for that item alone.
        """
        results: dict[str, list[Any] | SpindexError] = {}
        for start in range(0, len(item_ids), GRAPH_BATCH_MAX):
            part = list(item_ids[start : start + GRAPH_BATCH_MAX])
            urls = {str(n): f"/drives/{drive_id}/items/{item_id}/permissions" for n, item_id in enumerate(part)}
            answers = await self._batch(urls, kind="permissions")
            for n, item_id in enumerate(part):
                status, body = answers[str(n)]
                if status == 200:
                    results[item_id] = parse_permissions(body)
                else:
                    results[item_id] = PermissionsUnreadable(f"permissions of {item_id} unreadable (HTTP {status} in $batch)")
        return results

    async def _batch(self, urls: Mapping[str, str], *, kind: str) -> dict[str, tuple[int, dict[str, Any]]]:
        """GETs of `kind` through one `$batch` request each round; returns id -> (status, body).

        Each round waits for the RU of every sub-request it carries (they are costed one by one).
        """
        pending = dict(urls)
        answers: dict[str, tuple[int, dict[str, Any]]] = {}
        attempt = 0
        while pending:
            attempt += 1
            body = {"requests": [{"id": key, "method": "GET", "url": url} for key, url in pending.items()]}
            response = await self._call(
                "batch", lambda: self._json("POST", self.settings.base_url + "/$batch", body), cost=kind, count=len(pending)
            )
            throttled: list[Mapping[str, object]] = []
            for answer in response.get("responses", []):
                key, status = str(answer.get("id")), int(answer.get("status", 0))
                if key not in pending:
                    continue
                if status in (429, 503):
                    self.retrier.stats.throttled += 1
                    throttled.append(answer.get("headers") or {})
                    continue
                answers[key] = (status, answer.get("body") or {})
                del pending[key]
            missing = set(pending) - {str(a.get("id")) for a in response.get("responses", [])}
            for key in missing:  # a sub-response the service never sent counts as a failure
                answers[key] = (0, {})
                del pending[key]
            if not pending:
                break
            delays = [retry_delay(429, attempt, h, self.retrier.policy, self.retrier.rng) for h in throttled]
            if any(d is None for d in delays):
                for key in pending:
                    answers[key] = (429, {})
                break
            wait = max(d for d in delays if d is not None)
            self.retrier.stats.retries += 1
            self.retrier.stats.waited_s += wait
            await self.retrier.clock.sleep(wait)
        return answers

    async def _json(
        self, method: str, url: str, body: Mapping[str, object] | None = None, *, headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """One Graph request with the adapter's credential, its JSON answer as is (no SDK models)."""
        token = await self._auth.access_token_provider.get_authorization_token(self.settings.base_url)
        response = await self._raw_http().request(
            method,
            url,
            json=body,
            headers={
                **(headers or {}),
                "Authorization": f"Bearer {token}",
                "User-Agent": f"{USER_AGENT_PRODUCT}/{USER_AGENT_VERSION}",
            },
        )
        if response.status_code >= 400:
            error = APIError(_error_message(response))
            error.response_status_code = response.status_code
            error.response_headers = dict(response.headers)
            raise error
        try:
            answer = response.json()
        except ValueError:
            raise SourceUnavailable(f"Graph answered {method} {urlparse(url).path} with a body that is not JSON") from None
        return answer if isinstance(answer, dict) else {}

    def _raw_http(self) -> httpx.AsyncClient:
        if self._plain_http is None:
            self._plain_http = httpx.AsyncClient(timeout=60)
        return self._plain_http

    def stats_dict(self) -> dict[str, object]:
        """Traffic counters for the run report."""
        return self.stats.as_dict(self.retrier.stats.throttled, self.retrier.stats.retries)

    async def close(self) -> None:
        """Release the HTTP connections and the credential."""
        http = getattr(self.adapter, "_http_client", None)
        if http is not None:
            await http.aclose()
        if self._plain_http is not None:
            await self._plain_http.aclose()
        close = getattr(self._credential, "close", None)
        if close is not None:
            result = close()
            if hasattr(result, "__await__"):
                await result

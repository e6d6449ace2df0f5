"""The transport under the Azure AI Search backend: endpoint and credential checks, the one
retry policy around every SDK call, SDK errors mapped to spindex errors, and indexing batches.

The SDK neither cuts indexing batches (it only halves on 413, and 12.0.0 fails doing so) nor
raises on a 207, so this module does both: `cut_batches` measures the JSON exactly as the SDK
serialises it, and `write_actions` resends documents whose result is retryable (409, 422, 503)
with the `Retrier`'s backoff, then raises `IndexWriteFailed` naming every key that still
failed. A document is never dropped.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar, Union
from urllib.parse import urlsplit

from azure.core.credentials import AccessToken, AzureKeyCredential, TokenCredential
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.policies import AsyncBearerTokenCredentialPolicy
from azure.search.documents.aio import SearchClient
from azure.search.documents.models import IndexAction, IndexDocumentsBatch

from ingest.errors import AuthError, ConfigError, IndexUnavailable
from ingest.index.base import InvalidDocument
from ingest.retry import Retrier, retry_delay

SEARCH_SCOPE = "https://search.azure.com/.default"  # Entra scope of the data plane (SDK default)
SEARCH_BATCH_MAX_ACTIONS = 1000  # actions per indexing request (search-limits-quotas-capacity)
SEARCH_BATCH_MAX_BYTES = 16 * 2**20  # payload of one indexing request (same page)
# Per-document statuses worth resending (IndexingResult docs; the SDK's buffered sender agrees).
RETRYABLE_DOCUMENT_STATUSES = frozenset({409, 422, 503})
_ENVELOPE_BYTES = len(json.dumps({"value": []}))  # `{"value": []}` around the actions
_SEPARATOR_BYTES = len(", ")  # json.dumps' default item separator, as the SDK sends it
_SHOWN_KEYS = 20  # keys named in an error message; the exception carries all of them
_MESSAGE_CHARS = 300  # of a service error message quoted in ours

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})

Action = dict[str, Any]
Credential = Union[AzureKeyCredential, TokenCredential, AsyncTokenCredential]
T = TypeVar("T")


class _ThreadedTokenCredential:
    """An async face on a sync `TokenCredential`: token requests run in a worker thread, so a
    token refresh never blocks the event loop."""

    def __init__(self, credential: TokenCredential) -> None:
        self._credential = credential

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        """The wrapped credential's token for `scopes`."""
        return await asyncio.to_thread(self._credential.get_token, *scopes, **kwargs)

    async def close(self) -> None:
        """Nothing to release: the caller owns the wrapped credential."""

    async def __aenter__(self) -> _ThreadedTokenCredential:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


class _LoopbackBearerPolicy(AsyncBearerTokenCredentialPolicy):
    """Bearer auth that allows plain http: used only for a 127.0.0.1 endpoint (the test fake),
    where azure-core would otherwise refuse to send a token without TLS."""

    async def on_request(self, request: PipelineRequest[Any]) -> None:
        request.context["enforce_https"] = False  # what `enforce_https=False` per call sets
        await super().on_request(request)


def check_endpoint(endpoint: str) -> tuple[str, bool]:
    """(endpoint without trailing slash, whether it is plain http on a loopback address)."""
    parts = urlsplit(endpoint)
    if parts.scheme == "https" and parts.hostname:
        return endpoint.rstrip("/"), False
    if parts.scheme == "http" and parts.hostname in _LOOPBACK:
        return endpoint.rstrip("/"), True
    raise ConfigError("the search endpoint must be https://<service>.search.windows.net "
                      "(plain http is accepted only for 127.0.0.1, for tests)")


def search_credential(credential: Credential) -> AzureKeyCredential | AsyncTokenCredential:
    """`credential` in a form the async SDK clients take: a sync token credential is wrapped so
    that its token requests run in a thread. `ConfigError` for anything else."""
    if isinstance(credential, AzureKeyCredential):
        return credential
    get_token = getattr(credential, "get_token", None)
    if get_token is None:
        raise ConfigError("the search credential must be an AzureKeyCredential or a "
                          "TokenCredential (sync or async)")
    if inspect.iscoroutinefunction(get_token):
        return credential  # type: ignore[return-value]
    return _ThreadedTokenCredential(credential)  # type: ignore[arg-type,return-value]


def client_kwargs(credential: AzureKeyCredential | AsyncTokenCredential, *,
                  plain_http: bool) -> dict[str, Any]:
    """Keyword arguments for one SDK client: no azure-core retries (the `Retrier` is the one
    retry loop), and bearer auth allowed over plain http on loopback."""
    kwargs: dict[str, Any] = {"retry_total": 0}
    if plain_http and not isinstance(credential, AzureKeyCredential):
        # A policy instance per client: policies are chained into one pipeline each.
        kwargs["authentication_policy"] = _LoopbackBearerPolicy(credential, SEARCH_SCOPE)
    return kwargs


class IndexWriteFailed(IndexUnavailable):
    """Documents the service refused, after retries: `failed` maps key -> (status, message)."""

    def __init__(self, index: str, operation: str, failed: Mapping[str, tuple[int, str]]) -> None:
        self.index, self.operation, self.failed = index, operation, dict(failed)
        keys = sorted(self.failed)
        shown = ", ".join(f"{k} ({self.failed[k][0]})" for k in keys[:_SHOWN_KEYS])
        more = f" and {len(keys) - _SHOWN_KEYS} more" if len(keys) > _SHOWN_KEYS else ""
        super().__init__(f"{operation} on index {index!r}: {len(keys)} document(s) failed: "
                         f"{shown}{more}")


def action_bytes(action: Mapping[str, Any]) -> int:
    """The bytes `action` adds to an indexing request body, as the SDK serialises it.

    The SDK uses `json.dumps` defaults (ASCII-escaped, `", "` and `": "` separators), so the
    length in characters is the length in bytes.
    """
    return len(json.dumps(action))


def cut_batches(actions: Sequence[Action], *, max_actions: int = SEARCH_BATCH_MAX_ACTIONS,
                max_bytes: int = SEARCH_BATCH_MAX_BYTES) -> list[list[Action]]:
    """Consecutive runs of `actions`, each at most `max_actions` long and `max_bytes` big as the
    request body the SDK sends.

    Raises `InvalidDocument`, before any batch is formed, for an action that alone exceeds
    `max_bytes`.
    """
    costs = [action_bytes(a) for a in actions]
    for action, cost in zip(actions, costs, strict=True):
        if _ENVELOPE_BYTES + cost > max_bytes:
            raise InvalidDocument(f"document {action.get('id')!r} is {cost} bytes as JSON; one "
                                  f"indexing request carries at most {max_bytes}")
    batches: list[list[Action]] = []
    batch: list[Action] = []
    size = _ENVELOPE_BYTES
    for action, cost in zip(actions, costs, strict=True):
        extra = cost + (_SEPARATOR_BYTES if batch else 0)
        if batch and (len(batch) >= max_actions or size + extra > max_bytes):
            batches.append(batch)
            batch, size, extra = [], _ENVELOPE_BYTES, cost
        batch.append(action)
        size += extra
    if batch:
        batches.append(batch)
    return batches


def classify(exc: BaseException) -> tuple[int | None, Mapping[str, object] | None] | None:
    """(status, headers) of a transport failure the `Retrier` should judge, else None.

    A connection failure or time-out is (None, None): retried like a transient status.
    """
    if isinstance(exc, HttpResponseError) and exc.status_code is not None:
        response = exc.response
        return exc.status_code, dict(response.headers) if response is not None else None
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return None, None
    return None


def service_error(exc: Exception, what: str) -> Exception:
    """The spindex error for an SDK failure that retries did not cure: `AuthError` for 401/403,
    else `IndexUnavailable`. The message holds the status and the service's message only."""
    status = getattr(exc, "status_code", None)
    message = str(getattr(exc, "message", None) or exc).splitlines()[0][:_MESSAGE_CHARS]
    if isinstance(exc, ClientAuthenticationError) or status in (401, 403):
        return AuthError(f"{what}: the search service refused the credential (HTTP {status})")
    shown = f"HTTP {status}" if status is not None else type(exc).__name__
    return IndexUnavailable(f"{what}: {shown}: {message}")


Refusals = Mapping[int, Callable[[HttpResponseError], Exception]]


async def call(retrier: Retrier, what: str, operation: Callable[[], Awaitable[T]],
               refusals: Refusals | None = None) -> T:
    """`operation()` under the retry policy; a final SDK failure becomes a spindex error.

    `refusals` maps a final HTTP status to the error to raise instead (404 -> IndexNotFound,
    412 -> IndexAlreadyExists...). Errors raised by `operation` itself pass through.
    """
    try:
        return await retrier.run(operation, classify)
    except HttpResponseError as exc:
        if refusals and exc.status_code in refusals:
            raise refusals[exc.status_code](exc) from exc
        raise service_error(exc, what) from exc
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise service_error(exc, what) from exc


class _TooLarge(Exception):
    """The service answered 413 to an indexing request."""


async def write_actions(client: SearchClient, index: str, actions: Sequence[Action], *,
                        retrier: Retrier, operation: str, key_field: str = "id",
                        ok_statuses: frozenset[int] = frozenset(),
                        refusals: Refusals | None = None,
                        max_actions: int = SEARCH_BATCH_MAX_ACTIONS,
                        max_bytes: int = SEARCH_BATCH_MAX_BYTES) -> None:
    """Apply every action, or raise `IndexWriteFailed` naming each key the service refused.

    Whole requests failing with 429/503 (or a dropped connection) are retried by the Retrier,
    honouring Retry-After; documents answered 409/422/503 are resent, with the Retrier's
    backoff, up to its attempt limit. A per-document status in `ok_statuses` (404 for a merge
    of a chunk deleted meanwhile) counts as done. A request refused as too large (413) is split
    in two and resent. Actions must have distinct keys.
    """
    pending = list(actions)
    final: dict[str, tuple[int, str]] = {}
    too_large: Refusals = {**(refusals or {}), 413: lambda exc: _TooLarge()}
    attempt = 0
    while pending:
        attempt += 1
        retry: dict[str, tuple[int, str]] = {}
        queue = cut_batches(pending, max_actions=max_actions, max_bytes=max_bytes)
        while queue:
            batch = queue.pop(0)
            try:
                results = await call(retrier, f"{operation} on index {index!r}",
                                     lambda b=batch: _send(client, b), too_large)
            except _TooLarge:
                if len(batch) == 1:
                    final[str(batch[0][key_field])] = (413, "too large for one request")
                else:
                    queue[:0] = [batch[:len(batch) // 2], batch[len(batch) // 2:]]
                continue
            answered = set()
            for result in results:
                key, status = str(result.key), int(result.status_code or 0)
                answered.add(key)
                if result.succeeded or status in ok_statuses:
                    continue
                message = (result.error_message or "")[:_MESSAGE_CHARS]
                (retry if status in RETRYABLE_DOCUMENT_STATUSES else final)[key] = (status, message)
            for action in batch:  # a document without a result failed; it never succeeded
                if str(action[key_field]) not in answered:
                    final[str(action[key_field])] = (0, "the service returned no result for it")
        if not retry:
            break
        delay = retry_delay(None, attempt, None, retrier.policy, retrier.rng)
        if delay is None:
            final.update(retry)
            break
        retrier.stats.retries += 1
        retrier.stats.waited_s += delay
        await retrier.clock.sleep(delay)
        pending = [a for a in pending if str(a[key_field]) in retry]
    if final:
        raise IndexWriteFailed(index, operation, final)


async def _send(client: SearchClient, batch: Sequence[Action]) -> list[Any]:
    """One indexing request; the list of IndexingResult (a 207 does not raise)."""
    try:
        return await client.index_documents(IndexDocumentsBatch(
            actions=[IndexAction(action) for action in batch]))
    except TypeError as exc:
        # azure-search-documents 12.0.0 halves a batch on 413, but its call for the second half
        # passes `actions=` instead of `batch=`. The first half was written; resending it is
        # harmless (every action is idempotent), so the whole batch counts as refused.
        if "_index_documents_actions" in str(exc):
            raise _TooLarge() from exc
        raise

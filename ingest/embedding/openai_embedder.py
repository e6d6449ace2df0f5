"""Embeddings from OpenAI or Azure OpenAI, through the openai SDK.

The SDK does the HTTP work and the retries (Retry-After honoured, 408/409/429/5xx retried
`max_retries` times; platform-facts §13). With an `EmbeddingBudget` each request first waits
for its tokens and its slot in the deployment's TPM and RPM quota (the SDK's own retries of a
throttled request are not re-costed). This module cuts requests to the service limits,
checks what comes back, and turns the SDK's errors into spindex's: refused credentials are an
`AuthError`; an endpoint that stays unreachable, overloaded or rate-limited after the SDK's
retries is a `SystemicError`; one input over the model's token limit is a `ValueError` that
names the input. No message built here contains the API key or the server's echo of it.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import cast
from urllib.parse import urlsplit

import numpy as np
import openai
from openai.types import Embedding

from ingest.budget import EmbeddingBudget
from ingest.tokens import DEFAULT_ENCODING, check_encoding, count_tokens
from ingest.embedding.base import (
    MAX_INPUTS_PER_REQUEST,
    MAX_TOKENS_PER_INPUT,
    MAX_TOKENS_PER_REQUEST,
)
from ingest.errors import AuthError, ConfigError, SystemicError

log = logging.getLogger(__name__)

AZURE_API_VERSION = "2024-10-21"  # Azure OpenAI GA data-plane version with `dimensions`
TokenProvider = Callable[[], "str | Awaitable[str]"]
_COUNT_IN_THREAD_CHARS = 1_000_000  # count tokens off the event loop above this much text
_TOO_LONG = re.compile(  # how OpenAI and Azure word "this input is over the token limit"
    r"maximum context length|too many tokens|context_length_exceeded|token limit", re.I
)


class OpenAIEmbedder:
    """An `Embedder` over the OpenAI embeddings API, on OpenAI or on Azure OpenAI.

    Azure OpenAI when `endpoint` (`https://<resource>.openai.azure.com`) is given, with
    `deployment` defaulting to `model` and `api_version` to `AZURE_API_VERSION`; OpenAI or an
    OpenAI-compatible server otherwise (`base_url`, default api.openai.com). `model` is the
    model's name (it also names the vectors: `model_id`). Authenticate with `api_key`, or with
    `token_provider`: a callable returning a bearer token (sync or async), e.g. an
    azure-identity `get_bearer_token_provider(...)` for Entra ID.

    Counters `requests`, `inputs` and `tokens` (as billed when the service reports usage)
    add up over the embedder's life, for the run report.
    """

    def __init__(
        self,
        *,
        model: str,
        dimensions: int,
        base_url: str | None = None,
        endpoint: str | None = None,
        api_key: str | None = None,
        token_provider: TokenProvider | None = None,
        api_version: str | None = None,
        deployment: str | None = None,
        max_batch_inputs: int = MAX_INPUTS_PER_REQUEST,
        max_batch_tokens: int = MAX_TOKENS_PER_REQUEST,
        max_retries: int = 2,
        timeout: float = 60.0,
        send_dimensions: bool | None = None,
        encoding: str = DEFAULT_ENCODING,
        budget: EmbeddingBudget | None = None,
    ) -> None:
        if not model:
            raise ConfigError("embedding model name is empty")
        if dimensions < 1:
            raise ConfigError(f"embedding dimensions must be positive, got {dimensions}")
        if base_url and endpoint:
            raise ConfigError("give either base_url (OpenAI) or endpoint (Azure OpenAI), not both")
        api_key = api_key or None  # an empty key from an unset variable is no key
        if (api_key is None) == (token_provider is None):
            raise ConfigError("give exactly one of api_key and token_provider for embeddings")
        if max_batch_inputs < 1 or max_batch_tokens < 1 or max_retries < 0 or timeout <= 0:
            raise ConfigError("embedding batch limits and timeout must be positive, max_retries >= 0")
        self.model = model
        self.dimensions = dimensions
        self.model_id = f"{model}-{dimensions}"
        self.max_batch_inputs = min(max_batch_inputs, MAX_INPUTS_PER_REQUEST)
        self.max_batch_tokens = min(max_batch_tokens, MAX_TOKENS_PER_REQUEST)
        self.requests = 0
        self.inputs = 0
        self.tokens = 0
        self.budget = budget
        self._send_dimensions = _takes_dimensions(model) if send_dimensions is None else send_dimensions
        self.encoding = encoding
        self._secret = api_key
        self._max_retries = max_retries
        check_encoding(encoding)  # fail at construction, not at the first batch
        self._client: openai.AsyncOpenAI
        if endpoint:
            self._where = urlsplit(endpoint).netloc or endpoint
            self._client = openai.AsyncAzureOpenAI(
                azure_endpoint=endpoint,
                azure_deployment=deployment or model,
                api_version=api_version or AZURE_API_VERSION,
                api_key=api_key,
                azure_ad_token_provider=token_provider,
                max_retries=max_retries,
                timeout=timeout,
            )
        else:
            self._where = urlsplit(base_url).netloc if base_url else "api.openai.com"
            self._client = openai.AsyncOpenAI(
                base_url=base_url,
                api_key=api_key if api_key is not None else _async_key(token_provider),
                max_retries=max_retries,
                timeout=timeout,
            )

    async def embed(self, texts: Sequence[str], tokens: Sequence[int] | None = None) -> list[list[float]]:
        """One vector of `dimensions` floats per text, in the order of `texts`.

        `tokens`: each text's exact number of tokens in `encoding`, when the caller has them
        (chunks carry theirs); otherwise they are counted here. Sends as few requests as the
        limits allow (`max_batch_inputs` inputs and `max_batch_tokens` tokens each). Raises
        ValueError naming the input for an empty text or one over the model's 8,192-token
        limit (before anything is sent), AuthError when the credentials are refused,
        SystemicError when the service fails after retries.
        """
        texts = list(texts)
        for i, text in enumerate(texts):
            if not text:
                raise ValueError(f"input {i} is empty; the embeddings API rejects empty input")
        if tokens is not None:
            counts = list(tokens)
            if len(counts) != len(texts):
                raise ValueError(f"{len(counts)} token counts for {len(texts)} inputs")
        elif sum(len(t) for t in texts) > _COUNT_IN_THREAD_CHARS:
            counts = await asyncio.to_thread(self._count, texts)
        else:
            counts = self._count(texts)
        for i, count in enumerate(counts):
            if count > MAX_TOKENS_PER_INPUT:
                raise ValueError(
                    f"input {i} has {count} tokens, over the model's limit of {MAX_TOKENS_PER_INPUT}"
                )
        vectors: list[list[float]] = []
        for start, end in self._batches(counts):
            vectors.extend(await self._embed_batch(texts[start:end], counts[start:end], start))
        return vectors

    async def close(self) -> None:
        """Close the SDK client's connections."""
        await self._client.close()

    def _count(self, texts: Sequence[str]) -> list[int]:
        return [count_tokens(text, self.encoding) for text in texts]

    def _batches(self, counts: Sequence[int]) -> list[tuple[int, int]]:
        """[start, end) index ranges within both batch limits, in order."""
        ranges: list[tuple[int, int]] = []
        start, tokens = 0, 0
        for i, count in enumerate(counts):
            full = i - start >= self.max_batch_inputs or tokens + count > self.max_batch_tokens
            if i > start and full:
                ranges.append((start, i))
                start, tokens = i, 0
            tokens += count
        if counts:
            ranges.append((start, len(counts)))
        return ranges

    async def _embed_batch(self, batch: list[str], counts: list[int], offset: int) -> list[list[float]]:
        """The vectors of one request's inputs; `offset` is the first input's index in the
        caller's list, for error messages."""
        if self.budget is not None:
            await self.budget.acquire(sum(counts))
        try:
            # encoding_format is left to the SDK: it asks for base64 (a third of the bytes of
            # JSON floats) and decodes it.
            response = await self._client.embeddings.create(
                model=self.model,
                input=batch,
                dimensions=self.dimensions if self._send_dimensions else openai.omit,
            )
        except openai.BadRequestError as exc:
            if _TOO_LONG.search(_server_message(exc)):
                if len(batch) == 1:
                    raise ValueError(
                        f"input {offset} is over the model's token limit (the service refused it)"
                    ) from None
                # Our count and the service's disagree; find the culprit by halving.
                half = len(batch) // 2
                head = await self._embed_batch(batch[:half], counts[:half], offset)
                return head + await self._embed_batch(batch[half:], counts[half:], offset + half)
            raise SystemicError(self._describe(exc, "rejected the request")) from None
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            # The server's message is left out: OpenAI's 401 quotes part of the key.
            raise AuthError(
                f"embedding endpoint {self._where} refused the credentials (HTTP {exc.status_code})"
            ) from None
        except openai.RateLimitError as exc:
            raise SystemicError(
                self._describe(exc, f"kept rate-limiting after {self._max_retries} retries")
            ) from None
        except openai.APIStatusError as exc:
            raise SystemicError(self._describe(exc, "failed")) from None
        except openai.APIConnectionError as exc:
            raise SystemicError(
                f"embedding endpoint {self._where} unreachable after {self._max_retries} retries "
                f"({type(exc).__name__})"
            ) from None
        self.requests += 1
        self.inputs += len(batch)
        usage = getattr(response, "usage", None)
        self.tokens += getattr(usage, "prompt_tokens", None) or sum(counts)
        return self._vectors(response.data, len(batch))

    def _vectors(self, data: Sequence[Embedding], expected: int) -> list[list[float]]:
        """Response items as vectors in input order, each checked for length."""
        items = sorted(data, key=lambda item: item.index)
        if [item.index for item in items] != list(range(expected)):
            raise SystemicError(
                f"embedding endpoint {self._where} answered {len(items)} vectors for {expected} inputs"
            )
        vectors = []
        for item in items:
            raw: object = item.embedding
            vector = (
                np.frombuffer(base64.b64decode(raw), dtype="<f4").tolist()
                if isinstance(raw, str)  # base64 the SDK left undecoded
                else cast("list[float]", raw)
            )
            if len(vector) != self.dimensions:
                raise SystemicError(
                    f"model {self.model} returned {len(vector)}-dimensional vectors but "
                    f"dimensions is set to {self.dimensions}; fix the configuration"
                )
            vectors.append(vector)
        return vectors

    def _describe(self, exc: openai.APIStatusError, what: str) -> str:
        """A secret-free message for a failed request: status, error code, trimmed message."""
        code = getattr(exc, "code", None)
        request_id = getattr(exc, "request_id", None)
        message = _server_message(exc)[:200]
        if self._secret:
            message = message.replace(self._secret, "***")
        parts = [f"embedding endpoint {self._where} {what}: HTTP {exc.status_code}"]
        if code:
            parts.append(f"code {code}")
        if message:
            parts.append(message)
        if request_id:
            parts.append(f"request id {request_id}")
        return "; ".join(parts)


def _takes_dimensions(model: str) -> bool:
    """True for models that accept `dimensions=` (text-embedding-3 and later)."""
    match = re.search(r"text-embedding-(\d+)", model)
    return bool(match) and int(match.group(1)) >= 3


def _server_message(exc: openai.APIStatusError) -> str:
    """The `error.message` of an OpenAI-style error body, or ""."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]
    return ""


def _async_key(provider: TokenProvider | None) -> Callable[[], Awaitable[str]]:
    """A token provider as the async api-key callable AsyncOpenAI expects."""
    assert provider is not None

    async def key() -> str:
        token = provider()
        if inspect.isawaitable(token):
            token = await token
        return str(token)

    return key

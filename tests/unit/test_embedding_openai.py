"""The openai SDK path, against a local fake endpoint speaking OpenAI's and Azure's HTTP.

Invariants defended:
- OpenAI (`/v1/embeddings`, bearer key) and Azure OpenAI (`/openai/deployments/{d}/embeddings`
  with api-version, `api-key` header or an Entra token from a provider) both work through the
  real SDK, including its default base64 transfer;
- vectors come back in input order, whatever order the service lists them in;
- requests never exceed 2,048 inputs or `max_batch_tokens` tokens, and use no more requests
  than those limits need; `dimensions` is sent for text-embedding-3 models only;
- throttling (429 with Retry-After) is retried; refused credentials raise AuthError whose
  message holds no key; outages raise SystemicError; an input over the token limit is a
  ValueError naming its index; a vector of the wrong length is refused;
- `requests`, `inputs` and `tokens` count what was sent.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import numpy as np
import pytest

from ingest.tokens import count_tokens
from ingest.embedding import Embedder, OfflineEmbedder, OpenAIEmbedder
from ingest.errors import AuthError, ConfigError, SystemicError
from tests.fakes.embeddings_server import FakeEmbeddingsServer

KEY = "test-key"
DIMS = 12
MODEL = "text-embedding-3-small"


@pytest.fixture
def server() -> Iterator[FakeEmbeddingsServer]:
    with FakeEmbeddingsServer(dimensions=DIMS, keys=(KEY,)) as fake:
        yield fake


def _openai(server: FakeEmbeddingsServer, **kwargs: object) -> OpenAIEmbedder:
    options: dict[str, object] = {"model": MODEL, "dimensions": DIMS, "base_url": server.base_url + "/v1", "api_key": KEY}
    options.update(kwargs)
    return OpenAIEmbedder(**options)  # type: ignore[arg-type]


def _azure(server: FakeEmbeddingsServer, **kwargs: object) -> OpenAIEmbedder:
    options: dict[str, object] = {
        "model": MODEL,
        "dimensions": DIMS,
        "endpoint": server.base_url,
        "deployment": "embed-small",
        "api_key": KEY,
    }
    options.update(kwargs)
    return OpenAIEmbedder(**options)  # type: ignore[arg-type]


def _expected(texts: list[str]) -> list[list[float]]:
    """What the fake answers: the offline vectors, through float32."""
    return [np.asarray(v, dtype=np.float32).tolist() for v in OfflineEmbedder(DIMS).embed_sync(texts)]


# --- the two flavours and their credentials --------------------------------------------------


async def test_openai_with_api_key(server: FakeEmbeddingsServer) -> None:
    embedder = _openai(server)
    texts = ["first text", "second text", "third"]
    assert await embedder.embed(texts) == _expected(texts)
    path, body = server.requests[0]
    assert path == "/v1/embeddings"
    assert body["dimensions"] == DIMS and body["model"] == MODEL and body["input"] == texts
    assert body["encoding_format"] == "base64"  # the SDK's default, decoded by the SDK
    assert server.headers[0]["authorization"] == f"Bearer {KEY}"
    assert embedder.model_id == f"{MODEL}-{DIMS}" and isinstance(embedder, Embedder)
    await embedder.close()


async def test_openai_with_async_token_provider(server: FakeEmbeddingsServer) -> None:
    async def token() -> str:
        return KEY

    embedder = _openai(server, api_key=None, token_provider=token)
    assert await embedder.embed(["x"]) == _expected(["x"])
    await embedder.close()


async def test_azure_with_api_key(server: FakeEmbeddingsServer) -> None:
    embedder = _azure(server, api_version="2024-10-21")
    assert await embedder.embed(["azure text"]) == _expected(["azure text"])
    path, _ = server.requests[0]
    assert path == "/openai/deployments/embed-small/embeddings?api-version=2024-10-21"
    assert server.headers[0]["api-key"] == KEY
    await embedder.close()


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_azure_with_entra_token_provider(server: FakeEmbeddingsServer, asynchronous: bool) -> None:
    server.keys = {"entra-token"}

    async def async_token() -> str:
        return "entra-token"

    embedder = _azure(server, api_key=None, token_provider=async_token if asynchronous else (lambda: "entra-token"))
    assert await embedder.embed(["a", "b"]) == _expected(["a", "b"])
    assert server.headers[0]["authorization"] == "Bearer entra-token"
    assert "api-key" not in server.headers[0]
    await embedder.close()


# --- batching and order ----------------------------------------------------------------------


async def test_batches_split_by_inputs_and_keep_order(server: FakeEmbeddingsServer) -> None:
    embedder = _openai(server, max_batch_inputs=3)
    texts = [f"text {i}" for i in range(10)]
    assert await embedder.embed(texts) == _expected(texts)  # the fake lists data in reverse
    assert [len(body["input"]) for _, body in server.requests] == [3, 3, 3, 1]
    assert (embedder.requests, embedder.inputs) == (4, 10)
    assert embedder.tokens == sum(count_tokens(t) for t in texts)  # as the service reported
    await embedder.close()


async def test_batches_split_by_summed_tokens(server: FakeEmbeddingsServer) -> None:
    embedder = _openai(server, max_batch_tokens=25)
    texts = [" ".join(["word"] * 10)] * 7  # 10 tokens each: two fit per request, not three
    assert await embedder.embed(texts) == _expected(texts)
    assert [len(body["input"]) for _, body in server.requests] == [2, 2, 2, 1]
    await embedder.close()


async def test_given_token_counts_are_used_as_they_are(server: FakeEmbeddingsServer) -> None:
    # Counts the caller passes (a chunk's exact token_count) size the requests: here they say
    # 20 tokens each although each text has 10, so one text goes per request of 25 tokens.
    embedder = _openai(server, max_batch_tokens=25)
    texts = [" ".join(["word"] * 10)] * 3
    assert await embedder.embed(texts, [20, 20, 20]) == _expected(texts)
    assert [len(body["input"]) for _, body in server.requests] == [1, 1, 1]
    with pytest.raises(ValueError, match="over the model's limit"):
        await embedder.embed(["short"], [8193])  # refused before anything is sent
    with pytest.raises(ValueError, match="2 token counts for 1 inputs"):
        await embedder.embed(["short"], [1, 1])
    assert server.attempts == 3
    await embedder.close()


def test_an_unknown_encoding_is_refused_at_construction(server: FakeEmbeddingsServer) -> None:
    with pytest.raises(ValueError, match="unknown tiktoken encoding 'no_such_base'"):
        _openai(server, encoding="no_such_base")


async def test_inputs_are_capped_at_2048_per_request(server: FakeEmbeddingsServer) -> None:
    embedder = _openai(server, max_batch_inputs=10_000, max_batch_tokens=10**9)
    assert (embedder.max_batch_inputs, embedder.max_batch_tokens) == (2048, 300_000)
    vectors = await embedder.embed([f"t{i}" for i in range(2500)])
    assert len(vectors) == 2500
    assert [len(body["input"]) for _, body in server.requests] == [2048, 452]
    await embedder.close()


async def test_no_texts_no_request(server: FakeEmbeddingsServer) -> None:
    embedder = _openai(server)
    assert await embedder.embed([]) == []
    assert server.attempts == 0
    await embedder.close()


async def test_dimensions_are_sent_only_to_models_that_take_them(server: FakeEmbeddingsServer) -> None:
    embedder = _openai(server, model="text-embedding-ada-002")
    await embedder.embed(["x"])
    assert "dimensions" not in server.requests[0][1]
    await embedder.close()


# --- failures --------------------------------------------------------------------------------


async def test_throttling_is_retried(server: FakeEmbeddingsServer) -> None:
    server.rate_limit_times = 2
    embedder = _openai(server, max_retries=2)
    assert await embedder.embed(["x"]) == _expected(["x"])
    assert server.attempts == 3 and embedder.requests == 1
    await embedder.close()


async def test_throttling_beyond_the_retries_stops_the_run(server: FakeEmbeddingsServer) -> None:
    server.rate_limit_times = 5
    embedder = _openai(server, max_retries=1)
    with pytest.raises(SystemicError, match="rate-limiting") as caught:
        await embedder.embed(["x"])
    assert not isinstance(caught.value, AuthError)
    await embedder.close()


@pytest.mark.parametrize("flavour", ["openai", "azure"])
async def test_refused_key_is_an_auth_error_without_the_key(server: FakeEmbeddingsServer, flavour: str) -> None:
    secret = "sk-very-secret-value-123"
    embedder = (_openai if flavour == "openai" else _azure)(server, api_key=secret)
    with pytest.raises(AuthError) as caught:
        await embedder.embed(["x"])
    error = caught.value
    assert "401" in str(error)
    for text in (str(error), repr(error), repr(error.args)):
        assert secret not in text and "te**ey" not in text  # nor the server's masked echo
    assert error.__cause__ is None and error.__suppress_context__  # the SDK error is not chained
    await embedder.close()


async def test_server_errors_after_retries_stop_the_run(server: FakeEmbeddingsServer) -> None:
    server.fail_status = 503
    embedder = _openai(server, max_retries=1)
    with pytest.raises(SystemicError, match="HTTP 503"):
        await embedder.embed(["x"])
    assert server.attempts == 2
    await embedder.close()


async def test_unknown_azure_deployment_stops_the_run(server: FakeEmbeddingsServer) -> None:
    server.deployments = {"other"}
    embedder = _azure(server)
    with pytest.raises(SystemicError, match="HTTP 404"):
        await embedder.embed(["x"])
    await embedder.close()


async def test_unreachable_endpoint_stops_the_run() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    embedder = OpenAIEmbedder(
        model=MODEL, dimensions=DIMS, base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0, timeout=5
    )
    with pytest.raises(SystemicError, match="unreachable"):
        await embedder.embed(["x"])
    await embedder.close()


async def test_an_input_over_the_token_limit_is_named_before_sending(server: FakeEmbeddingsServer) -> None:
    embedder = _openai(server)
    with pytest.raises(ValueError, match="input 1 has 9000 tokens"):
        await embedder.embed(["fine", " x" * 9000])
    with pytest.raises(ValueError, match="input 0 is empty"):
        await embedder.embed([""])
    assert server.attempts == 0
    await embedder.close()


async def test_an_input_the_service_finds_too_long_is_named(server: FakeEmbeddingsServer) -> None:
    server.max_input_tokens = 20  # the service counts differently from the client
    embedder = _openai(server)
    texts = ["short"] * 5 + [" word" * 30] + ["short"] * 2
    with pytest.raises(ValueError, match="input 5 is over the model's token limit"):
        await embedder.embed(texts)
    await embedder.close()


async def test_vectors_of_the_wrong_length_are_refused(server: FakeEmbeddingsServer) -> None:
    server.wrong_dimensions = DIMS + 1
    embedder = _openai(server)
    with pytest.raises(SystemicError, match=f"returned {DIMS + 1}-dimensional vectors"):
        await embedder.embed(["x"])
    await embedder.close()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"endpoint": "https://x.openai.azure.com"},  # and base_url
        {"api_key": None},  # no credential at all
        {"token_provider": lambda: "t"},  # and an api key
        {"dimensions": 0},
    ],
)
def test_bad_settings_are_config_errors(kwargs: dict[str, object]) -> None:
    options: dict[str, object] = {"model": MODEL, "dimensions": DIMS, "base_url": "http://127.0.0.1:1/v1", "api_key": KEY}
    options.update(kwargs)
    with pytest.raises(ConfigError):
        OpenAIEmbedder(**options)  # type: ignore[arg-type]

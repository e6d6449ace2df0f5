"""The Embedder protocol: texts in, one vector per text out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

MAX_INPUTS_PER_REQUEST = 2048  # Azure OpenAI / OpenAI embeddings: inputs per array (platform-facts §13)
MAX_TOKENS_PER_REQUEST = 300_000  # summed over all inputs of one request (openai SDK docstring)
MAX_TOKENS_PER_INPUT = 8192  # text-embedding-3-*: per input (platform-facts §13)


@runtime_checkable
class Embedder(Protocol):
    """Turns chunk texts into vectors for the index."""

    model_id: str
    """Names the model and the dimensions, e.g. "text-embedding-3-small-1536". Stored on every
    index document; a stored vector is reused only under an identical `model_id`."""

    dimensions: int
    """The length of every vector. It comes from configuration and is never probed over the
    network; a model that answers with another length is an error."""

    max_batch_inputs: int
    """The most texts one call to the service carries; `embed` splits larger inputs itself."""

    encoding: str
    """The tiktoken encoding the model counts tokens in."""

    async def embed(self, texts: Sequence[str], tokens: Sequence[int] | None = None) -> list[list[float]]:
        """One vector of `dimensions` floats per text, in the order of `texts`.

        `tokens`, when given, are the texts' exact token counts in `encoding` (a chunk's
        `token_count` when the chunker counts in the same encoding), so that the embedder need
        not count them again.
        """
        ...

    async def close(self) -> None:
        """Release connections; the embedder is not used afterwards."""
        ...

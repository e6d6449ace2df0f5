"""Azure Blob state: cursor blobs written under ETag conditions, one blob lease per library.

A lease is taken for `LEASE_SECONDS` and renewed in the background while held, so a crashed
holder's lease lapses within that time and the next run proceeds. Writes use `If-Match` on the
ETag read with the cursor: a stale writer gets a conflict, never a silent overwrite.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
)

from ingest.errors import SystemicError
from ingest.state.base import DriveCursor, LeaseHeld, StateConflict, migrate_cursor

LEASE_SECONDS = 30  # blob leases are 15-60 s or infinite (Lease Blob REST reference)


class StateUnavailable(SystemicError):
    """The state store could not be reached."""


class BlobStateStore:
    """Cursors and leases in one blob container."""

    def __init__(self, service: Any, container: str, *, lease_seconds: int = LEASE_SECONDS) -> None:
        if not 15 <= lease_seconds <= 60:
            raise ValueError("lease_seconds must be between 15 and 60")
        self._service = service
        self._container = service.get_container_client(container)
        self._lease_seconds = lease_seconds
        self._ready = False

    async def _ensure(self) -> None:
        if self._ready:
            return
        try:
            await self._container.create_container()
        except ResourceExistsError:
            pass
        except (ServiceRequestError, HttpResponseError) as exc:
            raise StateUnavailable(f"blob state container unreachable ({type(exc).__name__})") from None
        self._ready = True

    async def load(self, key: str) -> tuple[DriveCursor, str] | None:
        """The stored cursor and its ETag, or None."""
        await self._ensure()
        blob = self._container.get_blob_client(f"cursors/{key}.json")
        try:
            download = await blob.download_blob()
            data = await download.readall()
        except ResourceNotFoundError:
            return None
        return migrate_cursor(json.loads(data)), download.properties.etag

    async def save(self, key: str, cursor: DriveCursor, *, if_match: str | None) -> str:
        """Write the cursor if the blob's ETag is still `if_match` (None: must not exist)."""
        await self._ensure()
        blob = self._container.get_blob_client(f"cursors/{key}.json")
        data = cursor.model_dump_json().encode()
        try:
            if if_match is None:
                result = await blob.upload_blob(data, overwrite=False)
            else:
                result = await blob.upload_blob(
                    data, overwrite=True, etag=if_match, match_condition=MatchConditions.IfNotModified
                )
        except (ResourceExistsError, ResourceModifiedError):
            raise StateConflict(f"state {key} changed since it was read") from None
        return result["etag"]

    async def delete(self, key: str) -> None:
        """Forget the cursor."""
        await self._ensure()
        with contextlib.suppress(ResourceNotFoundError):
            await self._container.get_blob_client(f"cursors/{key}.json").delete_blob()

    @contextlib.asynccontextmanager
    async def lease(self, key: str) -> AsyncIterator[None]:
        """Hold the library's blob lease for the block (renewed meanwhile); LeaseHeld if taken."""
        await self._ensure()
        blob = self._container.get_blob_client(f"leases/{key}")
        with contextlib.suppress(ResourceExistsError):
            await blob.upload_blob(b"", overwrite=False)
        # Shielded: a run cancelled while the request is out may yet be granted the lease, and
        # must then give it back rather than leave the library locked until the lease lapses.
        acquiring = asyncio.ensure_future(blob.acquire_lease(lease_duration=self._lease_seconds))
        try:
            lease = await asyncio.shield(acquiring)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await (await acquiring).release()
            raise
        except ResourceExistsError:
            raise LeaseHeld(f"library {key} is being synced by another run") from None
        except HttpResponseError as exc:
            if getattr(exc, "error_code", None) == "LeaseAlreadyPresent" or exc.status_code == 409:
                raise LeaseHeld(f"library {key} is being synced by another run") from None
            raise

        async def renew() -> None:
            while True:
                await asyncio.sleep(self._lease_seconds / 3)
                await lease.renew()

        renewer = asyncio.create_task(renew())
        try:
            yield
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await renewer
            with contextlib.suppress(HttpResponseError):
                await lease.release()

    async def close(self) -> None:
        """Release the HTTP connections."""
        await self._service.close()

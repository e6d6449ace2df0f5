"""Staging: the extracted text of each item version, kept so a rebuild needs no download.

One gzip'd JSON file (or blob) per item, under `<data_dir>/staging` or in the staging
container when state lives in Blob Storage, keyed by its parent key and holding
the cTag it was extracted from; a stale or missing entry simply means "download again". The
pipeline writes it after each extraction and removes it when the item is deleted.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
from pathlib import Path
from typing import Any

from ingest.errors import BadInput
from ingest.models import Extracted, ItemRef, Section

STAGING_VERSION = 1


def _encode(ctag: str, extracted: Extracted) -> bytes:
    payload = {
        "version": STAGING_VERSION,
        "ctag": ctag,
        "title": extracted.title,
        "sections": [{"text": s.text, "page": s.page} for s in extracted.sections],
    }
    return gzip.compress(json.dumps(payload).encode(), mtime=0)


def _encode_bad(ctag: str, error: BadInput) -> bytes:
    payload = {"version": STAGING_VERSION, "ctag": ctag, "bad": {"reason": error.reason, "message": str(error)}}
    return gzip.compress(json.dumps(payload).encode(), mtime=0)


def _decode(blob: bytes, ctag: str) -> Extracted | None:
    """The staged version if it is this cTag's; raises BadInput for a staged verdict."""
    try:
        data = json.loads(gzip.decompress(blob))
    except (OSError, ValueError):
        return None
    if data.get("version") != STAGING_VERSION or data.get("ctag") != ctag:
        return None
    if "bad" in data:  # this version could not be extracted: say so without a download
        raise BadInput(f"{data['bad']['message']} (staged verdict)", reason=data["bad"]["reason"])
    return Extracted([Section(s["text"], s.get("page")) for s in data["sections"]], data.get("title"))


class LocalStaging:
    """Extracted text by item, in a local folder."""

    def __init__(self, root: Path, *, read: bool = True) -> None:
        self.root = root
        self.read = read  # False for `reindex --from-source`: write through, never read
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, ref: ItemRef) -> Path:
        return self.root / f"{ref.parent_key}.json.gz"

    async def get(self, ref: ItemRef, ctag: str | None) -> Extracted | None:
        """The staged text of this exact version (same cTag), or None."""
        if not self.read or ctag is None:
            return None
        return await asyncio.to_thread(self._get, ref, ctag)

    def _get(self, ref: ItemRef, ctag: str) -> Extracted | None:
        try:
            blob = self._path(ref).read_bytes()
        except OSError:
            return None
        return _decode(blob, ctag)

    async def put(self, ref: ItemRef, ctag: str | None, extracted: Extracted) -> None:
        """Keep the text of this version (items without a cTag are not staged)."""
        if ctag is not None:
            await asyncio.to_thread(self._put, ref, _encode(ctag, extracted))

    async def put_bad(self, ref: ItemRef, ctag: str | None, error: BadInput) -> None:
        """Remember that this version's content cannot be indexed, and why."""
        if ctag is not None:
            await asyncio.to_thread(self._put, ref, _encode_bad(ctag, error))

    def _put(self, ref: ItemRef, data: bytes) -> None:
        path = self._path(ref)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    async def delete(self, ref: ItemRef) -> None:
        """Forget an item's staged text."""
        await asyncio.to_thread(self._path(ref).unlink, missing_ok=True)


class BlobStaging:
    """Extracted text by item, in a blob container (for jobs whose disk does not last)."""

    def __init__(self, service: Any, container: str, *, read: bool = True) -> None:
        self._container = service.get_container_client(container)
        self.read = read
        self._ready = False

    async def _ensure(self) -> None:
        if not self._ready:
            from azure.core.exceptions import ResourceExistsError

            try:
                await self._container.create_container()
            except ResourceExistsError:
                pass
            self._ready = True

    async def get(self, ref: ItemRef, ctag: str | None) -> Extracted | None:
        """The staged text of this exact version (same cTag), or None."""
        if not self.read or ctag is None:
            return None
        from azure.core.exceptions import ResourceNotFoundError

        await self._ensure()
        try:
            download = await self._container.get_blob_client(f"{ref.parent_key}.json.gz").download_blob()
            return _decode(await download.readall(), ctag)
        except ResourceNotFoundError:
            return None

    async def put(self, ref: ItemRef, ctag: str | None, extracted: Extracted) -> None:
        """Keep the text of this version."""
        if ctag is not None:
            await self._upload(ref, _encode(ctag, extracted))

    async def put_bad(self, ref: ItemRef, ctag: str | None, error: BadInput) -> None:
        """Remember that this version's content cannot be indexed, and why."""
        if ctag is not None:
            await self._upload(ref, _encode_bad(ctag, error))

    async def _upload(self, ref: ItemRef, data: bytes) -> None:
        await self._ensure()
        await self._container.get_blob_client(f"{ref.parent_key}.json.gz").upload_blob(data, overwrite=True)

    async def delete(self, ref: ItemRef) -> None:
        """Forget an item's staged text."""
        from azure.core.exceptions import ResourceNotFoundError

        await self._ensure()
        try:
            await self._container.get_blob_client(f"{ref.parent_key}.json.gz").delete_blob()
        except ResourceNotFoundError:
            pass

    async def close(self) -> None:
        """Release the HTTP connections."""
        await self._container.close()


Staging = LocalStaging | BlobStaging

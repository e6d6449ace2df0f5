"""Ids and timestamps the tenant derives: pure functions of their inputs, so loads are reproducible."""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import datetime, timezone

_ID_NAMESPACE = uuid.UUID("6f1c5b0e-8c1d-4d59-9d7e-5a0a6b1e2c3d")


def iso(moment: datetime) -> str:
    """Graph's timestamp form, e.g. `2025-01-06T09:00:00Z`."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def derived_guid(*parts: str) -> str:
    """A GUID that is a pure function of its inputs, for ids the tenant file leaves out."""
    return str(uuid.uuid5(_ID_NAMESPACE, "\x1f".join(parts)))


def derived_item_id(drive_id: str, key: str) -> str:
    """A SharePoint-style drive item id (34 characters, `01` + base32) derived from a key."""
    digest = hashlib.sha1(f"{drive_id}\x1f{key}".encode()).digest()
    return "01" + base64.b32encode(digest).decode()[:32]

"""Paging: opaque delta tokens and the delta feed, and `$top`/`$skiptoken` for collections.

Delta tokens are base64url JSON. A next-link token carries where the client is in the feed
(the last ordinal served) and which sequence the final delta link will carry; a delta-link
token carries the sequence the client is up to date with. Both keep the original `$select`
and `$top`, as Graph's links do.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode

from sandbox.model import Node
from sandbox.tenant import Tenant

DELTA_PAGE_SIZE = 200  # Graph's default delta page size for drives
COLLECTION_PAGE_SIZE = 100  # Graph's default for directory collections


class BadToken(ValueError):
    """A token that this server did not issue, or issued for another drive."""


def _encode(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(token: str) -> dict[str, Any]:
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise BadToken("the token is not one this server issued") from exc
    if not isinstance(payload, dict) or payload.get("v") != 1:
        raise BadToken("the token is not one this server issued")
    return payload


@dataclass(frozen=True, slots=True)
class DeltaState:
    """Where a client stands in one drive's delta feed."""

    drive_id: str
    since: int | None  # None: a full enumeration
    snapshot: int  # the sequence the closing delta link will carry
    cursor: int = -1  # the last ordinal already served
    select: str | None = None
    top: int | None = None

    @property
    def incremental(self) -> bool:
        """True for changes since a delta link, False for a full enumeration."""
        return self.since is not None


def next_link_token(state: DeltaState) -> str:
    """The token of an `@odata.nextLink`."""
    return _encode(
        {"v": 1, "k": "n", "d": state.drive_id, "s": state.since, "a": state.snapshot,
         "c": state.cursor, "sel": state.select, "top": state.top}
    )  # fmt: skip


def delta_link_token(drive_id: str, sequence: int, select: str | None, top: int | None) -> str:
    """The token of an `@odata.deltaLink`: changes after `sequence`."""
    return _encode({"v": 1, "k": "d", "d": drive_id, "s": sequence, "sel": select, "top": top})


def parse_delta_token(tenant: Tenant, drive_id: str, token: str | None) -> DeltaState:
    """The state a request starts from: no token, `latest`, a timestamp, or one of ours."""
    now = tenant.sequence
    if token is None or token == "":
        return DeltaState(drive_id, None, now)
    if token == "latest":
        return DeltaState(drive_id, now, now, cursor=2**62)  # nothing to serve, just a link
    if len(token) >= 20 and token[:4].isdigit() and token[4] == "-":
        return _timestamp_state(tenant, drive_id, token)
    payload = _decode(token)
    if payload.get("d") != drive_id:
        raise BadToken("the token belongs to another drive")
    if payload["k"] == "d":
        return DeltaState(drive_id, payload["s"], now, select=payload.get("sel"), top=payload.get("top"))
    return DeltaState(
        drive_id, payload["s"], payload["a"], payload["c"], payload.get("sel"), payload.get("top")
    )


def _timestamp_state(tenant: Tenant, drive_id: str, token: str) -> DeltaState:
    # Mutations run on a logical clock one second per sequence number (Tenant.mutation_time).
    try:
        moment = datetime.strptime(token[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    except ValueError as exc:
        raise BadToken("the token is not a timestamp") from exc
    epoch = tenant.mutation_epoch
    if moment < epoch:
        return DeltaState(drive_id, None, tenant.sequence)
    return DeltaState(drive_id, min(int((moment - epoch).total_seconds()), tenant.sequence), tenant.sequence)


@dataclass(slots=True)
class DeltaPage:
    """One page of a delta feed: the nodes to report, and where the next page starts."""

    nodes: list[Node]
    next_state: DeltaState | None  # None on the last page
    delta_sequence: int


def delta_page(tenant: Tenant, state: DeltaState, page_size: int) -> DeltaPage:
    """The next `page_size` items of the feed (latest state of each; deleted ones included).

    A full enumeration lists live items only, parents before children. With a token, it
    lists every item whose last change is newer than the token, deleted ones included.
    """
    with tenant.lock:
        nodes = tenant.drive_nodes(state.drive_id)
        if state.since is None:
            wanted = [n for n in nodes if not n.deleted and n.ordinal > state.cursor]
        else:
            wanted = [n for n in nodes if n.change_seq > state.since and n.ordinal > state.cursor]
        wanted.sort(key=lambda n: n.ordinal)
        page = wanted[:page_size]
        if len(wanted) > page_size:
            following = DeltaState(
                state.drive_id, state.since, state.snapshot, page[-1].ordinal, state.select, state.top
            )
            return DeltaPage(page, following, state.snapshot)
        return DeltaPage(page, None, state.snapshot)


def skip_token(offset: int) -> str:
    """The `$skiptoken` of a collection page that starts at `offset`."""
    return _encode({"v": 1, "k": "o", "o": offset})


def collection_page(
    values: Sequence[Any], query: dict[str, str], link_base: str, default_size: int = COLLECTION_PAGE_SIZE
) -> tuple[list[Any], str | None]:
    """One page of a collection by `$top`/`$skiptoken`, and the `@odata.nextLink` if more remain.

    Raises BadToken for a skip token this server did not issue, ValueError for a bad `$top`.
    """
    size = int(query["top"]) if query.get("top") else default_size
    if size < 1:
        raise ValueError("$top must be positive")
    offset = 0
    if query.get("skiptoken"):
        payload = _decode(query["skiptoken"])
        offset = int(payload.get("o", 0))
    page = list(values[offset : offset + size])
    if offset + size >= len(values):
        return page, None
    params = {f"${k}" if k in ("top", "select", "filter", "expand") else k: v for k, v in query.items()}
    params["$skiptoken"] = skip_token(offset + size)
    params.pop("skiptoken", None)
    return page, f"{link_base}?{urlencode(params)}"

"""Drive items read as plain JSON (`ingest/graph/drive_items.py`) say what msgraph-sdk's
`DriveItem` model says of the same JSON, for every field spindex reads.

The oracle is the SDK itself: each generated delta page is parsed both ways, through kiota's
JSON parse node into the SDK's delta response, and through `drive_entry`. Then the sandbox's
own delta pages, with folders, pages, deletes and sharing changes, are compared the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.graph.client import SHARING_PREFER
from ingest.graph.drive_items import DELTA_SELECT, DOWNLOAD_URL_FIELD, SHARED_CHANGED_FIELD, DriveEntry, drive_entry
from sandbox.server import SandboxServer
from sandbox.tenant import Tenant, load_tenant

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:msgraph")


def _sdk_items(page: dict[str, Any]) -> list[Any]:
    """The page's items as the SDK parses them (what spindex read before plain JSON)."""
    from kiota_abstractions.store import BackingStoreParseNodeFactory
    from kiota_serialization_json.json_parse_node_factory import JsonParseNodeFactory
    from msgraph.generated.drives.item.items.item.delta.delta_get_response import DeltaGetResponse

    node = BackingStoreParseNodeFactory(JsonParseNodeFactory()).get_root_parse_node(
        "application/json", json.dumps(page).encode()
    )
    return list(node.get_object_value(DeltaGetResponse).value or [])


def _as_sdk_read_it(raw: Any) -> DriveEntry:
    """The fields spindex took from an SDK `DriveItem`, as a `DriveEntry`."""
    extra = raw.additional_data or {}
    download_url = extra.get(DOWNLOAD_URL_FIELD)
    return DriveEntry(
        id=raw.id or "",
        name=raw.name,
        parent_id=raw.parent_reference.id if raw.parent_reference else None,
        web_url=raw.web_url,
        size=raw.size,
        ctag=raw.c_tag,
        etag=raw.e_tag,
        last_modified=raw.last_modified_date_time,
        is_file=raw.file is not None,
        mime_type=raw.file.mime_type if raw.file is not None else None,
        is_folder=raw.folder is not None,
        is_root=raw.root is not None,
        deleted=raw.deleted is not None,
        shared=raw.shared is not None,
        shared_changed=str(extra.get(SHARED_CHANGED_FIELD, "")).lower() == "true",
        download_url=download_url if isinstance(download_url, str) else None,
        list_item_unique_id=raw.sharepoint_ids.list_item_unique_id if raw.sharepoint_ids else None,
    )


def _assert_same(page: dict[str, Any]) -> None:
    ours = [drive_entry(value) for value in page["value"]]
    assert ours == [_as_sdk_read_it(raw) for raw in _sdk_items(page)]


_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
_maybe_text = st.one_of(st.none(), _text)
_timestamps = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.sampled_from(
        [timezone.utc, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]
    ),
).map(lambda d: d.isoformat().replace("+00:00", "Z"))


def _facet(inner: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[Any]:
    """A facet left out, null, or present (an object, possibly empty)."""
    return st.one_of(st.just(...), st.none(), inner)


@st.composite
def _drive_item(draw: st.DrawFn) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "id": draw(_maybe_text),
        "name": draw(_maybe_text),
        "webUrl": draw(_maybe_text),
        "size": draw(st.one_of(st.none(), st.integers(0, 2**53))),
        "cTag": draw(_maybe_text),
        "eTag": draw(_maybe_text),
        "lastModifiedDateTime": draw(st.one_of(st.none(), _timestamps)),
        "parentReference": draw(_facet(st.fixed_dictionaries({}, optional={"id": _maybe_text, "path": _text}))),
        "file": draw(_facet(st.fixed_dictionaries({}, optional={"mimeType": _maybe_text}))),
        "folder": draw(_facet(st.fixed_dictionaries({}, optional={"childCount": st.integers(0, 9)}))),
        "root": draw(_facet(st.just({}))),
        "deleted": draw(_facet(st.fixed_dictionaries({}, optional={"state": st.just("deleted")}))),
        "shared": draw(_facet(st.fixed_dictionaries({}, optional={"scope": st.sampled_from(["users", "anonymous"])}))),
        "sharepointIds": draw(_facet(st.fixed_dictionaries({}, optional={"listItemUniqueId": _maybe_text}))),
        DOWNLOAD_URL_FIELD: draw(st.one_of(st.just(...), _text)),
        SHARED_CHANGED_FIELD: draw(st.sampled_from([..., "True", "true", "False"])),
    }
    return {name: value for name, value in fields.items() if value is not ... and draw(st.booleans())}


@settings(max_examples=150, deadline=None)
@given(st.lists(_drive_item(), max_size=6))
def test_generated_drive_items_read_as_the_sdk_reads_them(items: list[dict[str, Any]]) -> None:
    _assert_same({"value": items, "@odata.nextLink": "https://graph.example/next"})


def _pages(server: SandboxServer, drive_id: str, link: str | None = None) -> Iterator[dict[str, Any]]:
    """The sandbox's delta pages of a library as JSON, as spindex asks for them."""
    headers = {"Authorization": f"Bearer {server.issue_token()}", "Prefer": SHARING_PREFER}
    url: str | None = link or f"{server.graph_url}/drives/{drive_id}/root/delta?$select={','.join(DELTA_SELECT)}&$top=7"
    while url:
        page = httpx.get(url, headers=headers).json()
        yield page
        url = page.get("@odata.nextLink")


def test_the_sandbox_s_delta_pages_read_as_the_sdk_reads_them() -> None:
    tenant: Tenant = load_tenant("demo")
    seen = dict.fromkeys(("file", "folder", "root", "sharepoint_ids", "download_url", "shared", "deleted", "shared_changed"), 0)

    def compare(page: dict[str, Any]) -> None:
        _assert_same(page)
        for entry in map(drive_entry, page["value"]):
            for kind, there in (
                ("file", entry.is_file), ("folder", entry.is_folder), ("root", entry.is_root),
                ("sharepoint_ids", entry.list_item_unique_id), ("download_url", entry.download_url), ("shared", entry.shared),
                ("deleted", entry.deleted), ("shared_changed", entry.shared_changed),
            ):  # fmt: skip
                seen[kind] += bool(there)

    with SandboxServer(tenant) as server:
        links: dict[str, str] = {}
        for drive in (drive for site in tenant.sites for drive in site.drives):
            for page in _pages(server, drive.id):
                compare(page)
                links[drive.id] = page.get("@odata.deltaLink") or links.get(drive.id, "")
        files = [item for item in tenant.items() if item.kind == "file"]
        tenant.delete(files[0].drive_id, files[0].item_id)
        tenant.set_permissions(files[1].drive_id, files[1].item_id, [{"user": tenant.users[0].upn}])
        for drive_id, link in links.items():
            for page in _pages(server, drive_id, link):
                compare(page)
    assert all(seen.values()), seen  # every kind of entry was compared

"""Directory reads (user ids, group memberships, group owners) against the sandbox over HTTP.

They are read as plain JSON, not through the SDK's models, so these tests hold them to what the
SDK path gave: every page followed, ids exactly the tenant's, a missing user an ItemUnavailable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ingest.components import open_parts
from ingest.config import Settings
from ingest.errors import AuthError, ItemUnavailable
from sandbox.loader import build_tenant
from sandbox.paging import COLLECTION_PAGE_SIZE
from sandbox.server import SandboxServer
from sandbox.tenant import Tenant
from tests.integration.conftest import spindex_settings

DOMAIN = "dir.example"
GROUPS = 2 * COLLECTION_PAGE_SIZE + 30  # ann belongs to all of them: three pages
OWNERS = COLLECTION_PAGE_SIZE + 7  # owners of the big group: two pages
GUEST = "gina_partner.example#EXT#@" + DOMAIN


def _document() -> dict[str, Any]:
    users: list[dict[str, Any]] = [{"upn": f"{n}@{DOMAIN}", "display_name": n} for n in ("ann", "ben", "cai")]
    users += [{"upn": f"owner{n:03d}@{DOMAIN}", "display_name": f"Owner {n}"} for n in range(OWNERS)]
    users.append({"upn": GUEST, "display_name": "Gina (guest)", "guest": True})
    groups: list[dict[str, Any]] = [
        {"name": f"G{n:03d}", "kind": "security", "members": [f"ann@{DOMAIN}"]} for n in range(GROUPS - 2)
    ]
    groups.append({"name": "Outer", "kind": "security", "members": [{"group": "G000"}, f"ben@{DOMAIN}"]})
    groups.append({
        "name": "Big", "kind": "m365", "members": [f"cai@{DOMAIN}"],
        "owners": [f"owner{n:03d}@{DOMAIN}" for n in range(OWNERS)],
    })  # fmt: skip
    groups.append({"name": "Small", "kind": "m365", "members": [], "owners": [f"ben@{DOMAIN}"]})
    site = {"path": "/sites/dir", "display_name": "Dir", "libraries": [{"name": "Documents", "items": []}]}
    return {
        "tenant": {"id": "0c5e1f3a-7b2d-4e6f-8a9b-1c2d3e4f5a6b", "name": "Directory", "hostname": "dirco.sharepoint.com"},
        "users": users,
        "groups": groups,
        "sites": [site],
    }


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Tenant, Settings]]:
    tenant = build_tenant(_document())
    with SandboxServer(tenant) as server:
        yield tenant, spindex_settings(server, tenant, Path(tmp_path_factory.mktemp("dir")), None)


def _read(settings: Settings, read: Any) -> Any:
    async def run() -> Any:
        async with open_parts(settings) as parts:
            return await read(parts.graph)

    return asyncio.run(run())


def test_user_ids_by_upn_whatever_the_case_and_guests(directory: tuple[Tenant, Settings]) -> None:
    tenant, settings = directory
    for upn in (f"ann@{DOMAIN}", f"BEN@{DOMAIN.upper()}", GUEST):
        assert _read(settings, lambda graph, upn=upn: graph.user_id(upn)) == tenant.user(upn).id
    ann = tenant.user(f"ann@{DOMAIN}")
    assert _read(settings, lambda graph: graph.user_id(ann.id)) == ann.id


def test_an_unknown_user_is_item_unavailable(directory: tuple[Tenant, Settings]) -> None:
    _, settings = directory
    with pytest.raises(ItemUnavailable):
        _read(settings, lambda graph: graph.user_id(f"nobody@{DOMAIN}"))


def test_transitive_groups_follow_every_page(directory: tuple[Tenant, Settings]) -> None:
    tenant, settings = directory
    for name in ("ann", "ben", "cai"):
        user = tenant.user(f"{name}@{DOMAIN}")
        ids = _read(settings, lambda graph, user=user: graph.transitive_group_ids(user.id))
        assert len(ids) == len(set(ids))
        assert set(ids) == tenant.transitive_group_ids(user.id)
    ann = tenant.user(f"ann@{DOMAIN}")
    assert len(tenant.transitive_group_ids(ann.id)) == GROUPS - 1  # every G, and Outer through G000


def test_group_owners_follow_every_page(directory: tuple[Tenant, Settings]) -> None:
    tenant, settings = directory
    for name, count in (("Big", OWNERS), ("Small", 1)):
        group = tenant.group(name)
        ids = _read(settings, lambda graph, group=group: graph.group_owner_ids(group.id))
        assert ids == list(group.owner_ids) and len(ids) == count


def test_a_denied_directory_read_names_the_permission(directory: tuple[Tenant, Settings]) -> None:
    tenant, settings = directory
    ann = tenant.user(f"ann@{DOMAIN}")
    with SandboxServer(tenant, granted_permissions={"Sites.Read.All", "User.Read.All"}) as server:
        denied = spindex_settings(server, tenant, settings.data_dir, None)
        assert _read(denied, lambda graph: graph.user_id(ann.upn)) == ann.id
        with pytest.raises(AuthError, match="HTTP 403.*GroupMember.Read.All"):
            _read(denied, lambda graph: graph.transitive_group_ids(ann.id))


def _upns() -> list[str]:
    """More UPNs than four `$batch` requests of 20 carry, one unknown to the directory."""
    return [f"owner{n:03d}@{DOMAIN}" for n in range(OWNERS)] + [f"nobody@{DOMAIN}", GUEST]


def test_user_ids_in_batches_are_the_directory_s(directory: tuple[Tenant, Settings]) -> None:
    tenant, settings = directory
    upns = _upns()
    ids = _read(settings, lambda graph: graph.batch_user_ids(upns))
    assert ids == {upn: None if upn.startswith("nobody@") else tenant.user(upn).id for upn in upns}


def test_a_denied_batch_lookup_names_the_permission_and_stops(directory: tuple[Tenant, Settings]) -> None:
    tenant, settings = directory
    upns = _upns()
    with SandboxServer(tenant, granted_permissions={"Sites.Read.All", "GroupMember.Read.All"}) as server:
        denied = spindex_settings(server, tenant, settings.data_dir, None)
        with pytest.raises(AuthError, match="HTTP 403.*User.Read.All"):
            _read(denied, lambda graph: graph.batch_user_ids(upns))
        batches = server.stats.snapshot()["requests"]["batch"]
    assert len(upns) > 4 * 20 and batches <= 4  # those in flight at the refusal, none after it

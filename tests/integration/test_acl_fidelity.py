"""Security trimming matches SharePoint for every permission form, and keeps matching.

Defends (DESIGN invariant 5, the ACL issue): for a tenant holding each permission form (Entra
security and Microsoft 365 groups, nesting, site groups resolved through SharePoint REST with
members and owners claims, "Everyone" and "Everyone except external users", guests,
specific-people / organization / anonymous links, broken and restored inheritance, an empty
site group, a site group of 1,500 members), an item is searchable as a user if and only if
the sandbox oracle says that user may read it. After each of a dozen permission changes, one
`run delta` followed by `run acl` restores that equality without a download or an embedding.
Items whose permissions answer 403 are searchable by nobody and listed in the run report.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from ingest.components import build_catalog, open_parts
from ingest.config import Settings
from ingest.models import ItemRef
from ingest.report import RunReport
from ingest.query import EVERYONE, EVERYONE_EXCEPT_EXTERNAL, security_filter
from ingest.runs import resolve_reader, run_acl_sweep
from sandbox.loader import build_tenant
from sandbox.server import SandboxServer
from sandbox.tenant import Tenant
from tests.integration.acl_tenant import acl_tenant_document, upn
from tests.integration.conftest import index_documents, read_documents, spindex_settings, sync

pytestmark = pytest.mark.slow
SEARCHED_CROWD = 12  # crowd members checked through real searches; all are checked by filter


async def mismatches(tenant: Tenant, settings: Settings) -> list[str]:
    """(user, item) pairs where the index and the oracle disagree; empty when trimming is exact."""
    docs = await read_documents(settings)
    by_item: dict[str, list[dict[str, object]]] = {}
    for doc in docs:
        by_item.setdefault(str(doc["parent_key"]), []).append(doc)
    items = tenant.items()
    wrong: list[str] = []
    async with open_parts(settings) as parts:
        catalog = build_catalog(settings)
        store = await catalog.open_index(str(await catalog.get_alias(settings.index.alias)))
        try:
            crowd_seen = 0
            for user in tenant.users:
                searched = not user.upn.startswith("crowd") or crowd_seen < SEARCHED_CROWD
                crowd_seen += user.upn.startswith("crowd")
                if searched:  # the reader's path: principals from Graph transitiveMemberOf
                    security = (await resolve_reader(parts.graph, settings, user.upn)).security
                else:  # the same filter from the tenant's own membership, to keep 1,500 users fast
                    principals = [EVERYONE] if user.is_guest else [EVERYONE, EVERYONE_EXCEPT_EXTERNAL]
                    security = security_filter(user.id, tenant.transitive_group_ids(user.id), principal_values=principals)
                hits: set[str] = set()
                if searched:
                    vector = (await parts.embedder.embed(["scenario permission form"]))[0]
                    found = await store.search("scenario permission form site news", vector, security=security, top=len(docs))
                    hits = {h.parent_key for h in found}
                for item in items:
                    key = ItemRef(item.drive_id, item.item_id).parent_key
                    chunks = by_item.get(key, [])
                    allowed = tenant.can_read(user.id, item.drive_id, item.item_id)
                    permitted = any(security.permits(c["group_ids"], c["user_ids"]) for c in chunks)
                    if permitted != allowed or (searched and (key in hits) != allowed):
                        wrong.append(f"{user.upn} {'may' if allowed else 'may not'} read {item.path}/{item.name}")
        finally:
            await store.close()
    return wrong


@dataclass
class World:
    tenant: Tenant
    server: SandboxServer
    settings: Settings

    def delta_then_acl(self) -> tuple[RunReport, RunReport]:
        self.server.stats.reset()
        delta = sync(self.settings, full=False)
        acl = asyncio.run(run_acl_sweep(self.settings))
        assert delta.status == "ok" and acl.status == "ok", (delta.as_dict(), acl.as_dict())
        assert self.server.stats.snapshot()["downloads"] == 0
        for report in (delta, acl):
            assert report.embedding.get("inputs", 0) == 0 and report.graph["bytes_downloaded"] == 0
        return delta, acl


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tenant = build_tenant(acl_tenant_document())
    with SandboxServer(tenant) as server:
        settings = spindex_settings(server, tenant, tmp_path_factory.mktemp("acl"), None)
        report = sync(settings, full=True)
        assert report.status == "ok", report.as_dict()
        yield World(tenant, server, settings)


def test_every_permission_form_trims_exactly(world: World) -> None:
    assert len(world.tenant.users) > 1500
    assert asyncio.run(mismatches(world.tenant, world.settings)) == []


def _item(tenant: Tenant, name: str):  # noqa: ANN202
    return tenant.find_item(name)


def _site(tenant: Tenant) -> str:
    return tenant.sites[0].id


MUTATIONS: list[tuple[str, Callable[[Tenant], None]]] = [
    ("user joins a granted group", lambda t: t.add_group_member("Security", upn("gus"))),
    ("user leaves a granted group", lambda t: t.remove_group_member("Security", upn("ben"))),
    ("group nested into a granted group", lambda t: t.add_group_member("Security", "Team")),
    ("file shared with one more user", lambda t: t.set_permissions(
        _item(t, "sec-group.md").drive_id, _item(t, "sec-group.md").item_id,
        [{"site_group": 3, "role": "owner"}, {"group": "Security", "role": "read"}, {"user": upn("cai"), "role": "read"}])),
    ("folder shared differently (children inherit)", lambda t: t.set_permissions(
        _item(t, "inherits.md").drive_id, _item(t, "inherits.md").parent_id, [{"user": upn("eli"), "role": "read"}])),
    ("unique permissions removed (inherit again)", lambda t: t.set_permissions(
        _item(t, "unique.md").drive_id, _item(t, "unique.md").item_id, None)),
    ("empty site group gains a member", lambda t: t.add_site_group_member(_site(t), 9, upn("dee"))),
    ("crowd site group loses a member", lambda t: t.remove_site_group_member(_site(t), 10, upn("crowd0001"))),
    ("Microsoft 365 group gains an owner", lambda t: t.add_group_owner("Team", upn("ann"))),
    ("sharing link to other people", lambda t: t.set_permissions(
        _item(t, "people-link.md").drive_id, _item(t, "people-link.md").item_id,
        [{"site_group": 3, "role": "owner"}, {"link": {"type": "view", "scope": "users", "recipients": [upn("eli")]}}])),
    ("site permissions changed", lambda t: t.set_site_permissions(
        _site(t), [{"site_group": 3, "role": "owner"}, {"user": upn("fay"), "role": "read"}])),
    ("folder unshared (inheritance restored)", lambda t: t.set_permissions(
        _item(t, "inherits.md").drive_id, _item(t, "inherits.md").parent_id, None)),
]


@pytest.mark.parametrize("name", [name for name, _ in MUTATIONS])
def test_delta_then_acl_sweep_restores_exact_trimming(world: World, name: str) -> None:
    dict(MUTATIONS)[name](world.tenant)
    world.delta_then_acl()
    assert asyncio.run(mismatches(world.tenant, world.settings)) == []


def test_unreadable_permissions_make_an_item_searchable_by_nobody(world: World) -> None:
    victims = [_item(world.tenant, n) for n in ("everyone.md", "direct-user.md")]
    for item in victims:
        world.server.faults.permission_errors[item.item_id] = 403
    try:
        acl = asyncio.run(run_acl_sweep(world.settings))
        assert acl.status == "item_failures" and acl.exit_code == 10
        assert {p.item_id for p in acl.failed} == {i.item_id for i in victims}
        assert all(p.stage == "permissions" and p.reason == "permissions_unreadable" for p in acl.failed)
        docs = index_documents(world.settings)
        for item in victims:
            chunks = [d for d in docs if d["parent_key"] == ItemRef(item.drive_id, item.item_id).parent_key]
            assert chunks and all(d["group_ids"] == [] and d["user_ids"] == [] for d in chunks)
    finally:
        world.server.faults.permission_errors.clear()
    delta, _ = world.delta_then_acl()  # readable again: the retry restores them, without a download
    assert asyncio.run(mismatches(world.tenant, world.settings)) == []

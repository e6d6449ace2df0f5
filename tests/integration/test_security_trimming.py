"""Security trimming matches SharePoint exactly, for every user and every indexed item.

Defends: a search as a user can return an item if and only if the sandbox oracle says that
user may read it. The reader's principals come from Graph (`transitiveMemberOf`) through the
same code `spindex search --as` uses; each item is searched for by its own words, with a
result list large enough to hold the whole index, so a missing or extra result is a trimming
error and not a ranking one.
"""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict

from ingest.components import build_catalog, open_parts
from ingest.models import ItemRef
from ingest.runs import resolve_reader
from tests.integration.conftest import SyncedTenant, index_documents


def _query(text: str) -> str:
    words = re.findall(r"[A-Za-z]{5,}", text)
    return " ".join(dict.fromkeys(words[:12]))


def test_search_returns_an_item_iff_the_oracle_says_the_user_may_read_it(synced_demo: SyncedTenant) -> None:
    tenant, settings = synced_demo.tenant, synced_demo.settings
    docs = index_documents(settings)
    first_chunk: dict[str, dict[str, object]] = {}
    for doc in docs:
        if doc["chunk_no"] == 0:
            first_chunk[str(doc["parent_key"])] = doc
    items = [i for i in tenant.items() if ItemRef(i.drive_id, i.item_id).parent_key in first_chunk]
    assert len(items) >= 35

    async def check() -> list[str]:
        wrong: list[str] = []
        async with open_parts(settings) as parts:
            catalog = build_catalog(settings)
            store = await catalog.open_index(str(await catalog.get_alias(settings.index.alias)))
            try:
                for user in tenant.users:
                    reader = await resolve_reader(parts.graph, settings, user.upn)
                    assert reader.user_id == user.id
                    for item in items:
                        parent = ItemRef(item.drive_id, item.item_id).parent_key
                        chunk = first_chunk[parent]
                        query = _query(f"{chunk['title']} {chunk['content']}")
                        vector = (await parts.embedder.embed([query]))[0]
                        hits = await store.search(query, vector, security=reader.security, top=len(docs))
                        found = parent in {hit.parent_key for hit in hits}
                        allowed = tenant.can_read(user.id, item.drive_id, item.item_id)
                        if found != allowed:
                            wrong.append(f"{user.upn} {'got' if found else 'missed'} {item.path}/{item.name}")
            finally:
                await store.close()
        return wrong

    assert asyncio.run(check()) == []


def test_every_user_is_denied_something_and_granted_something(synced_demo: SyncedTenant) -> None:
    """The demo tenant's permissions differ per user, so the check above is not vacuous."""
    tenant = synced_demo.tenant
    readable: dict[str, int] = defaultdict(int)
    items = [i for i in tenant.items() if i.bad_input is None]
    for user in tenant.users:
        readable[user.upn] = sum(tenant.can_read(user.id, i.drive_id, i.item_id) for i in items)
    assert all(0 < n < len(items) for n in readable.values()), readable
    assert len(set(readable.values())) >= 3

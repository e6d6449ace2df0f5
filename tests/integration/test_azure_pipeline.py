"""The whole pipeline against Azure AI Search (the real SDK over HTTP to the local fake).

Defends: a full sync with `index.backend: azure` creates the alias and its first index, writes
the same documents the local backend writes (security fields are not retrievable on Azure, so
they are compared through trimmed searches), and a delta after an edit converges the same way.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from ingest.components import build_catalog, open_parts
from ingest.models import ItemRef
from ingest.runs import resolve_reader
from sandbox.server import SandboxServer
from sandbox.tenant import load_tenant
from tests.fakes.search_server import FakeSearchService
from tests.integration.conftest import index_documents, spindex_settings, sync

SECURITY = ("group_ids", "user_ids")


def _strip(docs: list[dict[str, object]]) -> list[dict[str, object]]:
    return [{k: v for k, v in d.items() if k not in SECURITY} for d in docs]


def test_full_and_delta_sync_into_azure_search_match_the_local_index(tmp_path: Path) -> None:
    tenant = load_tenant("demo")
    with SandboxServer(tenant) as server, FakeSearchService() as search:
        azure = spindex_settings(server, tenant, tmp_path / "azure", None,
                                 index={"backend": "azure", "endpoint": search.endpoint, "api_key": "test-key"})
        local = spindex_settings(server, tenant, tmp_path / "local", None)
        assert sync(azure, full=True).status == "ok"
        assert sync(local, full=True).status == "ok"
        assert search.aliases.get("spindex") == "spindex-v1"
        assert _strip(index_documents(azure)) == _strip(index_documents(local))

        item = tenant.find_item("Remote Work Policy.md")
        tenant.update_content(item.drive_id, item.item_id, "# Remote work\nRemote work is allowed three days a week.")
        assert sync(azure, full=False).status == "ok" and sync(local, full=False).status == "ok"
        assert _strip(index_documents(azure)) == _strip(index_documents(local))

        async def trimmed(settings) -> dict[str, set[str]]:  # noqa: ANN001
            seen: dict[str, set[str]] = {}
            async with open_parts(settings) as parts:
                catalog = build_catalog(settings)
                store = await catalog.open_index(str(await catalog.get_alias("spindex")))
                try:
                    for user in tenant.users:
                        reader = await resolve_reader(parts.graph, settings, user.upn)
                        hits = await store.search("policy", None, security=reader.security, top=200)
                        seen[user.upn] = {h.parent_key for h in hits}
                finally:
                    await store.close()
                    close = getattr(catalog, "close", None)
                    if close:
                        await close()
            return seen

        on_azure, on_local = asyncio.run(trimmed(azure)), asyncio.run(trimmed(local))
        assert on_azure == on_local and any(on_azure.values())
        for upn, keys in on_azure.items():
            user = tenant.user(upn)
            for other in tenant.items():
                if ItemRef(other.drive_id, other.item_id).parent_key in keys:
                    assert tenant.can_read(user.id, other.drive_id, other.item_id)

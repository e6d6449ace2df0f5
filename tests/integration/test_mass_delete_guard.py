"""A run that would delete most of a library stops before deleting and says why.

Defends: when a delta would delete more than `sync.mass_delete_share` of a library's indexed
items, the run aborts (exit code 20) with a message naming the library and the counts,
deletes nothing and does not advance that library's cursor; `--allow-mass-delete` lets the
same change through.
"""

from __future__ import annotations

from pathlib import Path

from ingest.models import ItemRef
from ingest.report import EXIT_ABORTED
from sandbox.server import SandboxServer
from sandbox.tenant import load_tenant
from tests.integration.conftest import index_documents, spindex_settings, sync


def test_mass_deletion_is_refused_until_allowed(tmp_path: Path) -> None:
    import asyncio

    from ingest.runs import run_sync

    tenant = load_tenant("demo")
    with SandboxServer(tenant) as server:
        settings = spindex_settings(server, tenant, tmp_path, None, sync={"mass_delete_min_items": 1})
        assert sync(settings, full=True).status == "ok"
        drive = tenant.find_item("Leave and Holiday Policy.docx").drive_id
        in_drive = [i for i in tenant.items() if i.drive_id == drive and i.bad_input is None]
        doomed = {i.path.split("/")[1] for i in in_drive if i.path != "/"}
        for folder in [f for f in tenant.items(include_folders=True) if f.kind == "folder" and f.drive_id == drive]:
            if folder.path == "/" and folder.name in doomed and folder.name != "Personal":
                tenant.delete(drive, folder.item_id)
        survivors = [i for i in tenant.items() if i.drive_id == drive and i.bad_input is None]
        assert len(survivors) < len(in_drive) / 2
        before = index_documents(settings)

        report = sync(settings, full=False)
        assert report.status == "aborted" and report.exit_code == EXIT_ABORTED
        assert "would delete" in (report.abort_reason or "") and "--allow-mass-delete" in (report.abort_reason or "")
        assert index_documents(settings) == before
        assert sync(settings, full=False).status == "aborted"  # the cursor did not move past the deletes

        allowed = asyncio.run(run_sync(settings, full=False, allow_mass_delete=True))
        assert allowed.status == "ok"
        assert allowed.libraries[drive]["deleted"] == len(in_drive) - len(survivors)
        left = {d["parent_key"] for d in index_documents(settings) if d["drive_id"] == drive}
        assert left == {ItemRef(i.drive_id, i.item_id).parent_key for i in survivors}

"""Bad input never stops a run: each bad file is skipped with its own reason, the rest indexed.

Defends: the corrupt PDF, the encrypted PDF, the zero-byte file, the oversized file and the
unsupported type of the demo tenant are each reported with a specific reason and stage; the
oversized and unsupported files are never downloaded; every other item is indexed; the run
ends "ok" (exit code 0).
"""

from __future__ import annotations

from ingest.models import ItemRef
from tests.integration.conftest import SyncedTenant, index_documents


def test_each_bad_file_is_reported_with_its_reason(synced_demo: SyncedTenant) -> None:
    tenant, report = synced_demo.tenant, synced_demo.report
    bad = {i.item_id: i for i in tenant.items() if i.bad_input is not None}
    assert sorted(i.bad_input for i in bad.values()) == sorted(
        ["corrupt", "encrypted", "empty", "too_large", "unsupported_format"]
    )
    reported = {p.item_id: p for p in report.skipped}
    assert set(reported) == set(bad)
    for item_id, item in bad.items():
        problem = reported[item_id]
        assert problem.reason == item.bad_input, item.name
        assert problem.name == item.name and problem.message
        expected_stage = "list" if item.bad_input in ("too_large", "unsupported_format", "empty") else "extract"
        assert problem.stage == expected_stage, item.name
    assert report.failed == [] and report.status == "ok" and report.exit_code == 0


def test_everything_else_is_indexed(synced_demo: SyncedTenant) -> None:
    indexed = {str(d["parent_key"]) for d in index_documents(synced_demo.settings)}
    for item in synced_demo.tenant.items():
        key = ItemRef(item.drive_id, item.item_id).parent_key
        assert (key in indexed) == (item.bad_input is None), item.name


def test_run_report_file_lists_the_skips(synced_demo: SyncedTenant) -> None:
    import json

    latest = json.loads((synced_demo.settings.reports_dir / "latest.json").read_text())
    assert {p["reason"] for p in latest["skipped"]} == {"corrupt", "encrypted", "empty", "too_large", "unsupported_format"}

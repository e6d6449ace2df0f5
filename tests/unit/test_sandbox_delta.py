"""Drive delta in the sandbox behaves like SharePoint's, for full enumerations and for changes.

Defends: a full enumeration lists the root first and every parent before its children, pages
by `$top` (200 by default) and ends in a delta link; a delta link then returns exactly the items
each kind of mutation changed, in Graph's shape (latest state, no `parentReference.path`,
deleted items as id + `deleted` + parentReference, a renamed or moved folder without its
descendants, permission changes on inheriting descendants marked `sharedChanged` only when the
Prefer header asks); leaving `deleted` out of `$select` strips the facet; `token=latest`
starts from now; a gone drive answers 410 with a Location; changes made while a client pages
are never lost between the enumeration and the next delta.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from sandbox.server import SandboxServer
from sandbox.tenant import Tenant, load_tenant

PREFER = "deltashowremovedasdeleted, deltatraversepermissiongaps, deltashowsharingchanges"
ALICE = "alice.nguyen@northwindrobotics.example"


class Graph:
    """A tiny raw-HTTP Graph client, to see exactly what goes over the wire."""

    def __init__(self, server: SandboxServer, transport: httpx.HTTPTransport) -> None:
        self.server = server
        headers = {"Authorization": f"Bearer {server.issue_token()}"}
        self.http = httpx.Client(transport=transport, headers=headers, timeout=30)

    def get(self, path_or_url: str, **headers: str) -> httpx.Response:
        url = path_or_url if path_or_url.startswith("http") else self.server.graph_url + path_or_url
        return self.http.get(url, headers=headers)

    def delta(self, drive_id: str, link: str | None = None, query: str = "", prefer: str | None = PREFER) -> tuple[list[dict[str, Any]], str]:
        """Follow next links to the end; (all items, delta link)."""
        headers = {"Prefer": prefer} if prefer else {}
        response = self.get(link or f"/drives/{drive_id}/root/delta{query}", **headers)
        assert response.status_code == 200, response.text
        body = response.json()
        items = list(body["value"])
        while "@odata.nextLink" in body:
            body = self.get(body["@odata.nextLink"], **headers).json()
            items += body["value"]
        return items, body["@odata.deltaLink"]


@pytest.fixture
def tenant() -> Tenant:
    return load_tenant("demo")


@pytest.fixture(scope="module")
def transport() -> Iterator[httpx.HTTPTransport]:
    # One connection pool for the module: building an httpx client from scratch costs ~40 ms.
    shared = httpx.HTTPTransport()
    yield shared
    shared.close()


@pytest.fixture
def graph(tenant: Tenant, transport: httpx.HTTPTransport) -> Iterator[Graph]:
    with SandboxServer(tenant) as server:
        yield Graph(server, transport)


def hr_drive(tenant: Tenant) -> str:
    return tenant.site("hr").drives[0].id


def test_full_enumeration_lists_parents_first_in_graph_shape(tenant: Tenant, graph: Graph) -> None:
    drive = hr_drive(tenant)
    items, delta_link = graph.delta(drive, query="?$top=3")
    assert items[0]["root"] == {} and items[0]["name"] == "root"
    seen = {items[0]["id"]}
    for item in items[1:]:
        assert item["parentReference"]["id"] in seen
        assert "path" not in item["parentReference"]
        assert item["parentReference"]["driveId"] == drive and item["parentReference"]["driveType"] == "documentLibrary"
        seen.add(item["id"])
        if "file" in item:
            assert item["cTag"].startswith('"c:{') and item["@microsoft.graph.downloadUrl"].startswith(graph.server.base_url)
            assert item["file"]["mimeType"]
        else:
            assert "cTag" not in item and "childCount" in item["folder"]
        assert item["sharepointIds"]["listItemUniqueId"]
    assert seen - {items[0]["id"]} == {i.item_id for i in tenant.items(include_folders=True) if i.drive_id == drive}
    assert "token=" in delta_link
    again, _ = graph.delta(drive, delta_link)
    assert again == []


def test_default_page_size_is_200_and_top_is_honoured(tenant: Tenant, graph: Graph) -> None:
    drive = hr_drive(tenant)
    for n in range(230):
        tenant.add_file(drive, "/Bulk", f"file-{n:03}.txt", f"file {n}")
    first = graph.get(f"/drives/{drive}/root/delta").json()
    assert len(first["value"]) == 200 and "@odata.nextLink" in first
    small = graph.get(f"/drives/{drive}/items/root/delta()?$top=7").json()
    assert len(small["value"]) == 7


@pytest.mark.parametrize(
    "form",
    ["/root/delta", "/root/delta()", "/items/root/delta", "/items/root/delta()"],
)
def test_every_delta_url_form_is_accepted(tenant: Tenant, graph: Graph, form: str) -> None:
    drive = hr_drive(tenant)
    latest = graph.get(f"/drives/{drive}{form}?token=latest").json()
    assert latest["value"] == [] and "@odata.deltaLink" in latest
    token = latest["@odata.deltaLink"].split("token=")[1]
    item = tenant.find_item("Code of Conduct.pdf")
    tenant.rename(drive, item.item_id, "Code of Conduct 2025.pdf")
    with_token = graph.get(f"/drives/{drive}/items/root/delta(token='{token}')").json()
    assert [v["name"] for v in with_token["value"]] == ["Code of Conduct 2025.pdf"]


Mutation = Callable[[Tenant], set[str]]


def _add(t: Tenant) -> set[str]:
    return {t.add_file(hr_drive(t), "/Policies", "New Policy.md", "# New\nText").item_id}


def _update(t: Tenant) -> set[str]:
    item = t.find_item("Remote Work Policy.md")
    t.update_content(item.drive_id, item.item_id, "# Remote Work Policy\nNow four days a week.")
    return {item.item_id}


def _rename_folder(t: Tenant) -> set[str]:
    folder = next(i for i in t.items(include_folders=True) if i.name == "Policies" and i.drive_id == hr_drive(t))
    t.rename(folder.drive_id, folder.item_id, "Company Policies")
    return {folder.item_id}  # not its descendants


def _move(t: Tenant) -> set[str]:
    item = t.find_item("New Starter Checklist.txt")
    target = next(i for i in t.items(include_folders=True) if i.name == "Benefits")
    t.move(item.drive_id, item.item_id, target.item_id)
    return {item.item_id}


def _delete_folder(t: Tenant) -> set[str]:
    folder = next(i for i in t.items(include_folders=True) if i.name == "Onboarding")
    return set(t.delete(folder.drive_id, folder.item_id))


def _restore(t: Tenant) -> set[str]:
    item = t.find_item("Holiday Calendar 2025.xlsx")
    t.delete(item.drive_id, item.item_id)
    t.restore(item.drive_id, item.item_id)
    return {item.item_id}


def _folder_permissions(t: Tenant) -> set[str]:
    folder = next(i for i in t.items(include_folders=True) if i.name == "Personal")
    t.set_permissions(folder.drive_id, folder.item_id, [{"user": ALICE}])
    return {folder.item_id}  # its one file has unique permissions of its own: unaffected


def _library_permissions(t: Tenant) -> set[str]:
    drive = hr_drive(t)
    t.set_permissions(drive, "root", [{"user": ALICE}])
    root = t.root(drive)
    # The library root and everything that now takes its permissions from it.
    return {n.item_id for n in t.walk(root) if t.permission_source(n)[0] is root}


def _membership(t: Tenant) -> set[str]:
    t.add_group_member("HR Team", "erik.johansson@northwindrobotics.example")
    t.add_site_group_member(t.site("hr").id, 4, "priya.raman@northwindrobotics.example")
    return set()  # membership is resolved at query time: no item changes


@pytest.mark.parametrize(
    "mutate",
    [_add, _update, _rename_folder, _move, _delete_folder, _restore, _folder_permissions, _library_permissions, _membership],
)
def test_a_delta_link_returns_exactly_what_a_mutation_changed(tenant: Tenant, graph: Graph, mutate: Mutation) -> None:
    drive = hr_drive(tenant)
    _, delta_link = graph.delta(drive)
    expected = mutate(tenant)
    changes, _ = graph.delta(drive, delta_link)
    assert {c["id"] for c in changes} == expected
    for change in changes:
        node = tenant.node(drive, change["id"])
        if node.deleted:
            assert change["deleted"] == {"state": "deleted"} and "name" not in change
            assert change["parentReference"]["id"] == node.parent_id
        else:
            assert change["name"] == node.name and change["eTag"] == node.etag
            assert "path" not in change["parentReference"]


def test_content_tag_changes_only_with_content(tenant: Tenant, graph: Graph) -> None:
    drive = hr_drive(tenant)
    item = tenant.find_item("Remote Work Policy.md")
    raw = tenant.node(drive, item.item_id).content.read()  # type: ignore[union-attr]
    _, link = graph.delta(drive)
    tenant.update_content(drive, item.item_id, raw)  # saved again, same bytes
    (same,), link = graph.delta(drive, link)
    assert same["cTag"] == item.ctag and same["eTag"] != item.etag
    tenant.update_content(drive, item.item_id, raw + b"\nOne more line.")
    (changed,), _ = graph.delta(drive, link)
    assert changed["cTag"] != item.ctag and changed["size"] == len(raw) + 15


def test_shared_changed_marks_permission_changes_only_when_asked(tenant: Tenant, graph: Graph) -> None:
    drive = hr_drive(tenant)
    folder = next(i for i in tenant.items(include_folders=True) if i.name == "Benefits")
    renamed = tenant.find_item("Code of Conduct.pdf")
    _, link = graph.delta(drive)
    tenant.set_permissions(drive, folder.item_id, [{"group": "HR Team"}])
    tenant.rename(drive, renamed.item_id, "Conduct.pdf")
    changes, _ = graph.delta(drive, link)
    marked = {c["name"] for c in changes if c.get("@microsoft.graph.sharedChanged") == "True"}
    assert marked == {"Benefits", "Benefits Overview 2025.pptx", "Holiday Calendar 2025.xlsx"}
    plain, _ = graph.delta(drive, link, prefer=None)
    assert {c["id"] for c in plain} == {c["id"] for c in changes}
    assert not any("@microsoft.graph.sharedChanged" in c for c in plain)


def test_leaving_deleted_out_of_select_strips_the_facet(tenant: Tenant, graph: Graph) -> None:
    drive = hr_drive(tenant)
    item = tenant.find_item("Benefits Overview 2025.pptx")
    _, link = graph.delta(drive, query="?$select=id,name,file")
    tenant.delete(drive, item.item_id)
    (trap,), _ = graph.delta(drive, link)
    assert trap == {"id": item.item_id, "file": {}}  # no name, no deleted facet: the trap
    _, link = graph.delta(drive, query="?$select=id,name,file,deleted,parentReference")
    tenant.restore(drive, item.item_id)
    tenant.delete(drive, item.item_id)
    (proper,), _ = graph.delta(drive, link)
    assert proper["deleted"] == {"state": "deleted"}


def test_pages_change_in_the_site_pages_library(tenant: Tenant, graph: Graph) -> None:
    site = tenant.site("intranet")
    pages_drive = tenant.pages_drive(site.id)
    _, link = graph.delta(pages_drive.id)
    town_hall = tenant.find_item("Q3-Town-Hall-Recap.aspx")
    help_desk = tenant.find_item("IT-Help-Desk.aspx")
    tenant.edit_page(site.id, town_hall.page_id or "", "<p>Updated recap.</p>")
    tenant.delete_page(site.id, help_desk.page_id or "")
    changes, _ = graph.delta(pages_drive.id, link)
    by_id = {c["id"]: c for c in changes}
    assert set(by_id) == {town_hall.item_id, help_desk.item_id}
    assert by_id[town_hall.item_id]["cTag"] != town_hall.ctag
    assert by_id[town_hall.item_id]["sharepointIds"]["listItemUniqueId"] == town_hall.page_id
    assert by_id[help_desk.item_id]["deleted"] == {"state": "deleted"}
    assert graph.get(f"/sites/{site.id}/pages/{help_desk.page_id}").status_code == 404


def test_changes_while_paging_are_never_lost(tenant: Tenant, graph: Graph) -> None:
    drive = hr_drive(tenant)
    body = graph.get(f"/drives/{drive}/root/delta?$top=3").json()
    served = {v["id"]: v for v in body["value"]}
    first_file = next(v for v in body["value"] if "file" in v)
    # Mid-enumeration: delete something already served, add something new, move something ahead.
    tenant.delete(drive, first_file["id"])
    added = tenant.add_file(drive, "/", "Late Arrival.txt", "late")
    mover = tenant.find_item("Salary Bands 2025.xlsx")
    tenant.move(drive, mover.item_id, tenant.root(drive).item_id)
    while "@odata.nextLink" in body:
        body = graph.get(body["@odata.nextLink"]).json()
        served.update({v["id"]: v for v in body["value"]})
    changes, _ = graph.delta(drive, body["@odata.deltaLink"])
    for change in changes:
        served[change["id"]] = change
    live = {i.item_id for i in tenant.items(include_folders=True) if i.drive_id == drive}
    assert live <= set(served)
    assert added.item_id in served and "deleted" in served[first_file["id"]]
    assert served[mover.item_id]["parentReference"]["id"] == tenant.root(drive).item_id


def test_gone_drive_answers_410_with_a_location(tenant: Tenant, graph: Graph) -> None:
    drive = hr_drive(tenant)
    _, link = graph.delta(drive)
    graph.server.faults.gone_drives.add(drive)
    gone = graph.get(link)
    assert gone.status_code == 410
    assert gone.json()["error"]["code"] == "resyncRequired"
    restart = gone.headers["Location"]
    assert graph.get(restart).status_code == 200  # a full enumeration still works


def test_foreign_or_forged_tokens_are_refused(tenant: Tenant, graph: Graph) -> None:
    hr, finance = hr_drive(tenant), tenant.site("finance").drives[0].id
    _, link = graph.delta(hr)
    token = link.split("token=")[1]
    assert graph.get(f"/drives/{finance}/root/delta?token={token}").status_code == 400
    assert graph.get(f"/drives/{hr}/root/delta?token=not-a-token").json()["error"]["code"] == "invalidRequest"

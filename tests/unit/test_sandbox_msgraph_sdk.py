"""The real msgraph-sdk (kiota) client works against the sandbox exactly as spindex will use it.

Defends: with `GraphRequestAdapter.base_url` pointed at the sandbox, the SDK lists sites (all,
and by host path), lists libraries with and without the hidden Site Pages library, pages
through delta with `with_url` and a small `$top` (parents before children, ending in a delta
link), follows a delta link after changes and sees `sharedChanged`, downloads content through
the 302 redirect, reads effective permissions, reads a page's canvas layout, and resolves a
user's transitive groups.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from azure.core.credentials import AccessToken

from sandbox.server import SandboxServer
from sandbox.tenant import Tenant, load_tenant

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:msgraph")

PREFER = "deltashowremovedasdeleted, deltatraversepermissiongaps, deltashowsharingchanges"
ALICE = "alice.nguyen@northwindrobotics.example"


class _Cred:
    """A TokenCredential for the sandbox: hands out one bearer token."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, 2**31)


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer(load_tenant("demo")) as running:
        yield running


@pytest.fixture
async def client(server: SandboxServer) -> AsyncIterator[Any]:
    from kiota_authentication_azure.azure_identity_authentication_provider import AzureIdentityAuthenticationProvider
    from msgraph import GraphServiceClient
    from msgraph.graph_request_adapter import GraphRequestAdapter

    auth = AzureIdentityAuthenticationProvider(
        _Cred(server.issue_token()), scopes=["https://graph.microsoft.com/.default"], allowed_hosts=["127.0.0.1"]
    )
    adapter = GraphRequestAdapter(auth)
    adapter.base_url = server.graph_url
    yield GraphServiceClient(request_adapter=adapter)


def _config(query: Any = None, prefer: str | None = None) -> Any:
    from kiota_abstractions.base_request_configuration import RequestConfiguration

    config = RequestConfiguration(query_parameters=query)
    if prefer:
        config.headers.add("Prefer", prefer)
    return config


async def _delta_all(client: Any, drive_id: str, link: str | None = None, top: int = 4) -> tuple[list[Any], str]:
    from msgraph.generated.drives.item.items.item.delta.delta_request_builder import DeltaRequestBuilder

    params = DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(
        top=top, select=["id", "name", "deleted", "file", "folder", "parentReference", "cTag", "eTag", "root"]
    )
    config = _config(params, PREFER)
    builder = client.drives.by_drive_id(drive_id).items.by_drive_item_id("root").delta
    page = await (builder.with_url(link) if link else builder).get(request_configuration=config)
    items = list(page.value)
    while page.odata_next_link:
        page = await builder.with_url(page.odata_next_link).get(request_configuration=config)
        items += page.value
    assert page.odata_delta_link
    return items, page.odata_delta_link


async def test_sites_all_and_by_path(client: Any, server: SandboxServer) -> None:
    sites = await client.sites.get_all_sites.get()
    assert {s.name for s in sites.value} == {s.name for s in server.tenant.sites}
    hr = await client.sites.by_site_id("northwind.sharepoint.com:/sites/hr:").get()
    assert hr.display_name == "Human Resources" and hr.id == server.tenant.site("hr").id
    by_id = await client.sites.by_site_id(hr.id).get()  # kiota percent-encodes the commas
    assert by_id.web_url == "https://northwind.sharepoint.com/sites/hr"


async def test_site_pages_library_is_listed_only_when_system_is_selected(client: Any, server: SandboxServer) -> None:
    from msgraph.generated.sites.item.drives.drives_request_builder import DrivesRequestBuilder

    site = server.tenant.site("engineering")
    plain = await client.sites.by_site_id(site.id).drives.get()
    assert [d.name for d in plain.value] == ["Documents"]
    query = DrivesRequestBuilder.DrivesRequestBuilderGetQueryParameters(select=["id", "name", "webUrl", "system"])
    with_system = await client.sites.by_site_id(site.id).drives.get(request_configuration=_config(query))
    assert [(d.name, d.system is not None) for d in with_system.value] == [("Documents", False), ("Site Pages", True)]


async def test_delta_pages_with_with_url_and_then_reports_changes(client: Any) -> None:
    tenant = load_tenant("demo")  # a tenant of its own: this test changes it
    with SandboxServer(tenant) as own:
        from kiota_authentication_azure.azure_identity_authentication_provider import AzureIdentityAuthenticationProvider
        from msgraph import GraphServiceClient
        from msgraph.graph_request_adapter import GraphRequestAdapter

        auth = AzureIdentityAuthenticationProvider(_Cred(own.issue_token()), scopes=["x/.default"], allowed_hosts=["127.0.0.1"])
        adapter = GraphRequestAdapter(auth)
        adapter.base_url = own.graph_url
        own_client = GraphServiceClient(request_adapter=adapter)
        drive = tenant.site("hr").drives[0]
        items, delta_link = await _delta_all(own_client, drive.id)
        expected = {i.item_id for i in tenant.items(include_folders=True) if i.drive_id == drive.id}
        assert items[0].root is not None
        assert {i.id for i in items[1:]} == expected
        seen: set[str] = {items[0].id}
        for item in items[1:]:
            assert item.parent_reference.id in seen, "parents come before children"
            seen.add(item.id)
        assert own.stats.snapshot()["requests"]["delta"] >= 4  # really paged

        policy = tenant.find_item("Remote Work Policy.md")
        salary = tenant.find_item("Salary Bands 2025.xlsx")
        tenant.rename(drive.id, policy.item_id, "Hybrid Work Policy.md")
        tenant.set_permissions(drive.id, salary.item_id, [{"user": ALICE}])
        changes, _ = await _delta_all(own_client, drive.id, delta_link)
        by_id = {c.id: c for c in changes}
        assert set(by_id) == {policy.item_id, salary.item_id}
        assert by_id[policy.item_id].name == "Hybrid Work Policy.md"
        assert by_id[policy.item_id].c_tag == policy.ctag  # a rename keeps the content tag
        assert by_id[salary.item_id].additional_data.get("@microsoft.graph.sharedChanged") == "True"
        assert "@microsoft.graph.sharedChanged" not in by_id[policy.item_id].additional_data


async def test_download_follows_the_redirect(client: Any, server: SandboxServer) -> None:
    item = server.tenant.find_item("Leave and Holiday Policy.docx")
    data = await client.drives.by_drive_id(item.drive_id).items.by_drive_item_id(item.item_id).content.get()
    assert data == server.tenant.node(item.drive_id, item.item_id).content.read()  # type: ignore[union-attr]


async def test_permissions_are_the_effective_set(client: Any, server: SandboxServer) -> None:
    board = server.tenant.find_item("Q3 2025 Board Pack.pdf")
    perms = await client.drives.by_drive_id(board.drive_id).items.by_drive_item_id(board.item_id).permissions.get()
    assert [(p.roles, p.granted_to_v2.group.display_name) for p in perms.value] == [(["read"], "Finance Leadership")]
    policy = server.tenant.find_item("Code of Conduct.pdf")  # inherits from the site
    perms = await client.drives.by_drive_id(policy.drive_id).items.by_drive_item_id(policy.item_id).permissions.get()
    site_groups = {p.granted_to_v2.site_group.display_name: p.roles for p in perms.value}
    assert site_groups == {
        "Human Resources Owners": ["owner"],
        "Human Resources Members": ["write"],
        "Human Resources Visitors": ["read"],
    }
    vendor = server.tenant.find_item("Servo Motor Vendor Evaluation.xlsx")
    perms = await client.drives.by_drive_id(vendor.drive_id).items.by_drive_item_id(vendor.item_id).permissions.get()
    link = next(p for p in perms.value if p.link is not None)
    assert (link.link.type, link.link.scope) == ("view", "users")
    assert [i.user.display_name for i in link.granted_to_identities_v2] == ["Erik Johansson"]


async def test_page_with_canvas_layout(client: Any, server: SandboxServer) -> None:
    from msgraph.generated.sites.item.pages.item.graph_site_page.graph_site_page_request_builder import (
        GraphSitePageRequestBuilder,
    )

    tenant: Tenant = server.tenant
    site = tenant.site("intranet")
    pages = await client.sites.by_site_id(site.id).pages.graph_site_page.get()
    assert [p.name for p in pages.value] == sorted((p.name for p in pages.value), key=str.lower)
    home = tenant.find_item("Home.aspx")
    query = GraphSitePageRequestBuilder.GraphSitePageRequestBuilderGetQueryParameters(expand=["canvasLayout"])
    page = await client.sites.by_site_id(site.id).pages.by_base_site_page_id(home.page_id).graph_site_page.get(
        request_configuration=_config(query)
    )
    assert page.title == "Welcome to Northwind Robotics"
    parts = [w for s in page.canvas_layout.horizontal_sections for c in s.columns for w in c.webparts]
    assert parts[0].inner_html.startswith("<h1>Welcome to Northwind Robotics</h1>")
    pages_drive = tenant.pages_drive(site.id)
    item = await client.drives.by_drive_id(pages_drive.id).items.by_drive_item_id(home.item_id).get()
    assert item.sharepoint_ids.list_item_unique_id == home.page_id


async def test_users_and_transitive_groups(client: Any, server: SandboxServer) -> None:
    alice = await client.users.by_user_id(ALICE).get()
    groups = await client.users.by_user_id(alice.id).transitive_member_of.graph_group.get()
    assert {g.display_name for g in groups.value} == {"HR Team", "All Staff"}
    assert {g.id for g in groups.value} == server.tenant.transitive_group_ids(alice.id)
    guest = next(u for u in server.tenant.users if u.is_guest)
    fetched = await client.users.by_user_id(guest.upn).get()
    assert fetched.user_type == "Guest"

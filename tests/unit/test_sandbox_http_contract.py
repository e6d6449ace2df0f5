"""The sandbox speaks Graph's HTTP contract, including its failures, and its fault knobs work.

Defends: client credentials give a bearer token and bad ones a 401 `invalid_client`; every
Graph and SharePoint REST request without a valid token is a 401 in Graph's error shape; a
withheld app permission answers 403 naming it; `$batch` checks each sub-request on its own
(404s and 424s inside a 200, a 21st request refused, throttling per sub-request); the throttle
knob yields 429 with Retry-After; permission and site-group faults answer their status;
downloads are pre-authenticated and honour Range; item GET carries `parentReference.path`;
collections page with nextLink; the server handles concurrent requests; stats count by kind.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from sandbox.server import SandboxServer
from sandbox.tenant import Tenant, load_tenant


@pytest.fixture(scope="module")
def tenant() -> Tenant:
    return load_tenant("demo")


@pytest.fixture
def server(tenant: Tenant) -> Iterator[SandboxServer]:
    with SandboxServer(tenant) as running:
        yield running


@pytest.fixture(scope="module")
def transport() -> Iterator[httpx.HTTPTransport]:
    # One connection pool for the module: building an httpx client from scratch costs ~40 ms.
    shared = httpx.HTTPTransport()
    yield shared
    shared.close()


@pytest.fixture
def web(transport: httpx.HTTPTransport) -> httpx.Client:
    """A client with no credentials (not closed: it would close the shared transport)."""
    return httpx.Client(transport=transport, timeout=30)


@pytest.fixture
def http(server: SandboxServer, transport: httpx.HTTPTransport) -> httpx.Client:
    """A client for the Graph endpoint, with a valid bearer token."""
    headers = {"Authorization": f"Bearer {server.issue_token()}"}
    return httpx.Client(transport=transport, base_url=server.graph_url, headers=headers, timeout=30)


def _auth(http: httpx.Client) -> dict[str, str]:
    return {"Authorization": http.headers["Authorization"]}


def _batch(http: httpx.Client, requests: list[dict[str, Any]]) -> httpx.Response:
    return http.post("/$batch", content=json.dumps({"requests": requests}), headers={"Content-Type": "application/json"})


def test_client_credentials_give_a_token_and_bad_ones_401(server: SandboxServer, web: httpx.Client) -> None:
    form = {"grant_type": "client_credentials", "client_id": "sandbox-client", "client_secret": "sandbox-secret",
            "scope": "https://graph.microsoft.com/.default"}  # fmt: skip
    good = web.post(server.token_url, data=form)
    assert good.status_code == 200
    body = good.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    sites = web.get(server.graph_url + "/sites/getAllSites", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert sites.status_code == 200
    bad = web.post(server.token_url, data={**form, "client_secret": "wrong"})
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
    assert "wrong" not in bad.text
    alias = web.post(f"{server.base_url}/sandbox/oauth2/v2.0/token", data=form)
    assert alias.status_code == 200
    unknown = web.post(f"{server.base_url}/contoso.onmicrosoft.com/oauth2/v2.0/token", data=form)
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_request"


@pytest.mark.parametrize("path", ["/v1.0/sites/getAllSites", "/v1.0/$batch", "/sites/hr/_api/web/sitegroups"])
def test_requests_without_a_valid_token_get_401(server: SandboxServer, path: str, web: httpx.Client) -> None:
    for headers in ({}, {"Authorization": "Bearer forged"}):
        response = web.get(server.base_url + path, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "InvalidAuthenticationToken"
    token = server.issue_token()
    server.revoke_tokens()
    assert web.get(server.graph_url + "/sites/root", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_a_withheld_permission_answers_403_naming_it(server: SandboxServer, http: httpx.Client, tenant: Tenant) -> None:
    user = tenant.users[0]
    server.granted_permissions.discard("GroupMember.Read.All")
    denied = http.get(f"/users/{user.id}/transitiveMemberOf/microsoft.graph.group")
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "accessDenied" and "GroupMember.Read.All" in denied.json()["error"]["message"]
    assert http.get(f"/users/{user.id}").status_code == 200
    server.granted_permissions.discard("Sites.Read.All")
    assert http.get("/sites/getAllSites").status_code == 403
    drive = tenant.sites[0].drives[0].id
    assert http.get(f"/drives/{drive}/root/delta").status_code == 200  # Files.Read.All still covers drives


def test_batch_checks_every_sub_request(http: httpx.Client, tenant: Tenant) -> None:
    item = tenant.find_item("Code of Conduct.pdf")
    response = _batch(http, [
        {"id": "1", "method": "GET", "url": f"/drives/{item.drive_id}/items/{item.item_id}/permissions"},
        {"id": "2", "method": "GET", "url": f"drives/{item.drive_id}/items/no-such-item"},
        {"id": "3", "method": "GET", "url": "/users?$top=2", "dependsOn": ["2"]},
        {"id": "4", "method": "GET", "url": f"/drives/{item.drive_id}/items/{item.item_id}/content", "dependsOn": ["1"]},
    ])  # fmt: skip
    assert response.status_code == 200
    parts = {p["id"]: p for p in response.json()["responses"]}
    assert parts["1"]["status"] == 200 and len(parts["1"]["body"]["value"]) == 3
    assert parts["2"]["status"] == 404 and parts["2"]["body"]["error"]["code"] == "itemNotFound"
    assert parts["3"]["status"] == 424
    assert parts["4"]["status"] == 302 and parts["4"]["headers"]["Location"].startswith(str(http.base_url).split("/v1.0")[0])


def test_batch_refuses_more_than_twenty_requests(http: httpx.Client) -> None:
    too_many = [{"id": str(n), "method": "GET", "url": "/sites/root"} for n in range(21)]
    response = _batch(http, too_many)
    assert response.status_code == 400 and "20" in response.json()["error"]["message"]
    assert _batch(http, too_many[:20]).status_code == 200


def test_throttling_hits_requests_and_batch_parts_alike(server: SandboxServer, http: httpx.Client) -> None:
    server.faults.throttle_rate = 0.5
    server.faults.retry_after = 7
    statuses = [http.get("/sites/root") for _ in range(40)]
    throttled = [r for r in statuses if r.status_code == 429]
    assert 5 < len(throttled) < 35
    assert all(r.headers["Retry-After"] == "7" and r.json()["error"]["code"] == "TooManyRequests" for r in throttled)
    batch = None
    for _ in range(20):  # the batch itself may be throttled too; retry until it goes through
        batch = _batch(http, [{"id": str(n), "method": "GET", "url": "/sites/root"} for n in range(20)])
        if batch.status_code == 200:
            break
    assert batch is not None and batch.status_code == 200
    inner = [p for p in batch.json()["responses"] if p["status"] == 429]
    assert inner and all(p["headers"]["Retry-After"] == "7" for p in inner)
    assert server.stats.snapshot()["throttled"] >= len(throttled) + len(inner)
    server.faults.throttle_rate = 0.0
    assert http.get("/sites/root").status_code == 200


def test_throttling_is_reproducible_with_a_seed(tenant: Tenant, transport: httpx.HTTPTransport) -> None:
    def pattern() -> list[int]:
        with SandboxServer(tenant, seed=42) as running:
            client = httpx.Client(transport=transport, base_url=running.graph_url)
            running.faults.throttle_rate = 0.3
            headers = {"Authorization": f"Bearer {running.issue_token()}"}
            return [client.get("/sites/root", headers=headers).status_code for _ in range(25)]

    assert pattern() == pattern()


def test_permission_and_site_group_faults(
    server: SandboxServer, http: httpx.Client, tenant: Tenant, web: httpx.Client
) -> None:
    item = tenant.find_item("Code of Conduct.pdf")
    server.faults.permission_errors[item.item_id] = 403
    denied = http.get(f"/drives/{item.drive_id}/items/{item.item_id}/permissions")
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "accessDenied"
    server.faults.site_group_errors[4] = 403
    rest = web.get(server.sharepoint_url + "/sites/hr/_api/web/sitegroups/getbyid(4)/users",
                     headers={**_auth(http), "Accept": "application/json;odata=nometadata"})  # fmt: skip
    assert rest.status_code == 403 and "odata.error" in rest.json()


def test_sharepoint_rest_lists_site_group_members(
    server: SandboxServer, http: httpx.Client, tenant: Tenant, web: httpx.Client
) -> None:
    headers = {**_auth(http), "Accept": "application/json;odata=nometadata"}
    owners = web.get(server.sharepoint_url + "/sites/hr/_api/web/AssociatedOwnerGroup", headers=headers).json()
    assert owners["Id"] == 3 and owners["PrincipalType"] == 8
    users = web.get(server.sharepoint_url + "/sites/hr/_api/web/sitegroups/getbyid(3)/users", headers=headers).json()
    hr_team = tenant.group("HR Team")
    assert [(u["LoginName"], u["PrincipalType"]) for u in users["value"]] == [
        (f"c:0o.c|federateddirectoryclaimprovider|{hr_team.id}_o", 4)
    ]
    intranet = web.get(server.sharepoint_url + "/sites/intranet/_api/web/sitegroups/getbyname('Intranet Everyone')/users",
                         headers={**_auth(http), "Accept": "application/json;odata=verbose"}).json()  # fmt: skip
    assert intranet["d"]["results"][0]["LoginName"] == "c:0(.s|true"


def test_downloads_are_pre_authenticated_and_honour_range(
    server: SandboxServer, http: httpx.Client, tenant: Tenant, web: httpx.Client
) -> None:
    item = tenant.find_item("Remote Work Policy.md")
    redirect = http.get(f"/drives/{item.drive_id}/items/{item.item_id}/content")
    assert redirect.status_code == 302
    location = redirect.headers["Location"]
    full = web.get(location)  # no Authorization header at all
    assert full.status_code == 200 and full.content.startswith(b"# Remote Work Policy")
    part = web.get(location, headers={"Range": "bytes=2-7"})
    assert part.status_code == 206 and part.content == b"Remote" and part.headers["Content-Range"].endswith(f"/{item.size}")
    assert web.get(location[:-3] + "xyz").status_code == 401
    huge = tenant.find_item("Factory Floor Lidar Survey.pdf")
    meta = http.get(f"/drives/{huge.drive_id}/items/{huge.item_id}").json()
    tail = web.get(meta["@microsoft.graph.downloadUrl"], headers={"Range": "bytes=-16"})
    assert tail.status_code == 206 and len(tail.content) == 16
    snapshot = server.stats.snapshot()
    assert snapshot["downloads"] == 3 and snapshot["bytes_downloaded"] == item.size + 6 + 16  # the forged URL served nothing


def test_item_get_has_the_parent_path_and_sites_resolve_by_path(http: httpx.Client, tenant: Tenant) -> None:
    item = tenant.find_item("Salary Bands 2025.xlsx")
    body = http.get(f"/drives/{item.drive_id}/items/{item.item_id}").json()
    assert body["parentReference"]["path"] == f"/drives/{item.drive_id}/root:/Employee Relations"
    assert body["webUrl"] == "https://northwind.sharepoint.com/sites/hr/Shared%20Documents/Employee%20Relations/Salary%20Bands%202025.xlsx"
    assert "shared" not in body  # it inherits from its folder
    folder = http.get(f"/drives/{item.drive_id}/items/{body['parentReference']['id']}").json()
    assert folder["shared"] == {} and folder["folder"]["childCount"] == 3
    for path in ("/sites/northwind.sharepoint.com:/sites/finance", "/sites/northwind.sharepoint.com:/sites/finance:"):
        assert http.get(path).json()["displayName"] == "Finance"
    drives = http.get("/sites/northwind.sharepoint.com:/sites/finance:/drives").json()["value"]
    assert [d["name"] for d in drives] == ["Documents"]
    assert http.get("/sites/root").json()["root"] == {}


def test_collections_page_and_filter(http: httpx.Client, tenant: Tenant) -> None:
    first = http.get("/sites/getAllSites()?$top=3").json()
    second = http.get(first["@odata.nextLink"]).json()
    assert len(first["value"]) == 3 and "@odata.nextLink" not in second
    assert {s["id"] for s in first["value"] + second["value"]} == {s.id for s in tenant.sites}
    guest = http.get("/users?$filter=userType eq 'Guest'").json()["value"]
    assert [u["displayName"] for u in guest] == ["Pat Kim (Fabrikam)"]
    all_staff = tenant.group("All Staff")
    members = http.get(f"/groups/{all_staff.id}/transitiveMembers/microsoft.graph.user?$top=4").json()
    names = [u["displayName"] for u in members["value"]]
    while "@odata.nextLink" in members:
        members = http.get(members["@odata.nextLink"]).json()
        names += [u["displayName"] for u in members["value"]]
    assert len(names) == 7 and "Pat Kim (Fabrikam)" not in names
    owners = http.get(f"/groups/{tenant.group('Engineering').id}/owners").json()["value"]
    assert [o["displayName"] for o in owners] == ["Dana Okafor"]


def test_concurrent_requests_are_served(server: SandboxServer, tenant: Tenant, web: httpx.Client) -> None:
    server.faults.latency_s = 0.05
    token = server.issue_token()
    items = tenant.items()[:16]

    def fetch(index: int) -> int:
        item = items[index]
        url = f"{server.graph_url}/drives/{item.drive_id}/items/{item.item_id}/permissions"
        return web.get(url, headers={"Authorization": f"Bearer {token}"}).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        assert list(pool.map(fetch, range(len(items)))) == [200] * len(items)
    assert server.stats.snapshot()["requests"]["permissions"] == len(items)


def test_stats_count_requests_by_kind(server: SandboxServer, http: httpx.Client, tenant: Tenant) -> None:
    site = tenant.site("hr")
    drive = site.drives[0].id
    http.get(f"/sites/{site.id}")
    http.get(f"/sites/{site.id}/drives")
    http.get(f"/sites/{site.id}/pages")
    http.get(f"/drives/{drive}/root/delta")
    http.get(f"/users/{tenant.users[0].id}")
    _batch(http, [{"id": "1", "method": "GET", "url": f"/drives/{drive}"}])
    requests = server.stats.snapshot()["requests"]
    assert {k: v for k, v in requests.items() if v} == {"site": 1, "drive": 2, "page": 1, "delta": 1, "user": 1, "batch": 1}
    server.stats.reset()
    assert server.stats.snapshot()["total_requests"] == 0

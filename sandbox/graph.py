"""The Graph v1.0 routes of the sandbox: URL -> handler, with faults, stats and app permissions.

`GraphApp.handle` serves one request below `/v1.0` (a top-level one, or one `$batch`
sub-request). Authentication and latency are the HTTP layer's business (`sandbox.server`);
throttling, app-permission checks and request counting happen here, so that each `$batch`
sub-request is subject to them on its own.

App permissions each route needs (any one of those listed):

| route                                          | permission                           |
|------------------------------------------------|--------------------------------------|
| /sites/...  (sites, getAllSites, pages)        | Sites.Read.All                       |
| /sites/{id}/drives, /drives/... (items, delta, content, permissions) | Files.Read.All or Sites.Read.All |
| /users, /users/{id}                            | User.Read.All                        |
| /users/{id}/transitiveMemberOf, /groups/...    | GroupMember.Read.All                 |

Sites.FullControl.All and Directory.Read.All count as covering the read permissions above.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sandbox import graph_json as gj
from sandbox.batch import run_batch
from sandbox.graph_common import (
    FILES_READ,
    GROUP_CASTS,
    GROUP_MEMBER_READ,
    IMPLIED,
    SITE_PAGE_CASTS,
    SITES_READ,
    USER_CASTS,
    USER_READ,
    GraphError,
    apply_filter,
    bad_request,
    expand_set,
    not_found,
    select_fields,
)
from sandbox.http_types import Request, Response, json_response
from sandbox.model import Node, Site
from sandbox.paging import BadToken, collection_page
from sandbox.routes_drives import DriveRoutes

if TYPE_CHECKING:
    from sandbox.server import SandboxServer

_SITE_PATH = re.compile(r"^(?P<host>[^:/]+):(?P<path>/[^:]*)?:?(?P<rest>/.*)?$")

Handler = Callable[[], Response]


class GraphApp(DriveRoutes):
    """Routes Graph requests to handlers over one tenant."""

    def __init__(self, server: SandboxServer) -> None:
        self.server = server
        self.tenant = server.tenant

    # --- entry point --------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Serve one Graph request (path relative to `/v1.0`); never raises."""
        try:
            kind, handler = self.route(request)
        except GraphError as exc:
            self.server.stats.count("other")
            return exc.response()
        self.server.stats.count(kind)
        if self.server.faults.should_throttle():
            self.server.stats.count_throttled()
            status = self.server.faults.throttle_status
            code = "TooManyRequests" if status == 429 else "serviceNotAvailable"
            headers = {"Retry-After": str(self.server.faults.retry_after)}
            return GraphError(status, code, "Too many requests; retry later (sandbox throttle).", headers).response()
        try:
            return handler()
        except GraphError as exc:
            return exc.response()
        except BadToken as exc:
            return bad_request(str(exc)).response()
        except KeyError as exc:
            return not_found(str(exc.args[0]) if exc.args else request.path).response()

    def require(self, *permissions: str) -> None:
        """403 accessDenied unless the app holds one of `permissions` (or one implying it)."""
        granted = self.server.granted_permissions
        if any(p in granted or IMPLIED.get(p) in granted for p in permissions):
            return
        raise GraphError(
            403, "accessDenied", f"Either scp or roles claim need to be present: this request requires {permissions[0]}"
        )

    def route(self, request: Request) -> tuple[str, Handler]:
        """(stats kind, handler) for a request; GraphError 404 for an unknown route."""
        if request.method not in ("GET", "POST"):
            raise GraphError(405, "invalidRequest", f"Method {request.method} is not supported by the sandbox")
        segments = request.segments
        head = segments[0].lower() if segments else ""
        if head == "$batch" and request.method == "POST" and len(segments) == 1:
            return "batch", lambda: run_batch(self, request)
        if request.method != "GET":
            raise GraphError(405, "invalidRequest", "Only GET is supported here")
        if head == "sites":
            return self._site_routes(request, segments[1:])
        if head == "drives" and len(segments) >= 2:
            return self.drive_routes(request, segments[1], segments[2:])
        if head == "users":
            return self._user_routes(request, segments[1:])
        if head == "groups":
            return self._group_routes(request, segments[1:])
        raise not_found(request.path)

    # --- helpers shared by the route families -------------------------------------------------

    def link(self, path: str) -> str:
        """An absolute URL on this server's Graph endpoint."""
        return self.server.graph_url + path

    def listing(self, request: Request, values: list[dict[str, Any]], link_path: str, context: str) -> Response:
        """A filtered, `$select`ed, paged collection response."""
        values = apply_filter(values, request.query.get("filter"))
        try:
            page, next_link = collection_page(values, request.query, self.link(link_path))
        except ValueError as exc:
            raise bad_request(str(exc)) from None
        fields = select_fields(request)
        body: dict[str, Any] = {
            "@odata.context": f"{self.server.graph_url}/$metadata#{context}",
            "value": [gj.select(v, fields) for v in page],
        }
        if next_link:
            body["@odata.nextLink"] = next_link
        return json_response(200, body)

    def one(self, request: Request, value: dict[str, Any]) -> Response:
        """A single `$select`ed resource."""
        return json_response(200, gj.select(value, select_fields(request)))

    def find_site(self, ref: str) -> Site:
        """A site by Graph id (`host,siteGuid,webGuid`, `host,siteGuid` or the site GUID); 404 if none."""
        wanted = ref.lower()
        for site in self.tenant.sites:
            host_and_guid = f"{self.tenant.hostname},{site.site_guid}".lower()
            if wanted in (site.id.lower(), host_and_guid, site.site_guid.lower()):
                return site
        raise not_found(f"site {ref}")

    # --- sites and pages -------------------------------------------------------------------

    def _site_routes(self, request: Request, rest: list[str]) -> tuple[str, Handler]:
        if not rest:
            return "site", lambda: self._search_sites(request)
        first = rest[0]
        root_id = gj.root_site_json(self.tenant)["id"]
        if first.lower() in ("root", root_id.lower(), self.tenant.hostname.lower()) and len(rest) == 1:
            return "site", lambda: self._sites_read(lambda: self.one(request, gj.root_site_json(self.tenant)))
        if first.lower() in ("getallsites", "getallsites()") and len(rest) == 1:
            return "site", lambda: self._sites_read(lambda: self._all_sites(request))
        if ":" in first:
            match = _SITE_PATH.match("/".join(rest))
            if match is None:
                raise bad_request(f"Malformed site path: {'/'.join(rest)}")
            site = self._site_by_path(match["host"], match["path"] or "/")
            rest = [first] + [s for s in (match["rest"] or "").split("/") if s]
        else:
            site = self.find_site(first)
        return self._site_sub_routes(request, site, rest[1:])

    def _sites_read(self, handler: Handler) -> Response:
        self.require(SITES_READ)
        return handler()

    def _site_by_path(self, host: str, path: str) -> Site:
        if host.lower() != self.tenant.hostname.lower():
            raise not_found(f"host {host}")
        for site in self.tenant.sites:
            if site.path.lower() == path.rstrip("/").lower():
                return site
        raise not_found(f"site {host}:{path}")

    def _site_sub_routes(self, request: Request, site: Site, rest: list[str]) -> tuple[str, Handler]:
        lowered = [s.lower() for s in rest]
        tenant = self.tenant
        if not rest:
            return "site", lambda: self._sites_read(lambda: self.one(request, gj.site_json(tenant, site)))
        if lowered == ["drives"]:
            return "drive", lambda: self._site_drives(request, site)
        if lowered[0] == "drive":  # the site's default library
            default = next((d for d in site.drives if not d.system), None)
            if default is None:
                raise not_found(f"site {site.id} has no document library")
            return self.drive_routes(request, default.id, rest[1:])
        if lowered == ["sites"]:
            return "site", lambda: self._sites_read(lambda: self.listing(request, [], "", "sites"))
        if lowered[0] == "pages":
            if len(rest) == 1 or (len(rest) == 2 and lowered[1] in SITE_PAGE_CASTS):
                return "page", lambda: self._pages(request, site)
            if len(rest) == 2 or (len(rest) == 3 and lowered[2] in SITE_PAGE_CASTS):
                return "page", lambda: self._page(request, site, rest[1])
        raise not_found(request.path)

    def _search_sites(self, request: Request) -> Response:
        self.require(SITES_READ)
        term = request.query.get("search", "").strip().strip('"').lower()
        sites = [
            gj.site_json(self.tenant, s)
            for s in self.tenant.sites
            if term in ("", "*") or term in s.display_name.lower() or term in s.name.lower()
        ]
        return self.listing(request, sites, "/sites", "sites")

    def _all_sites(self, request: Request) -> Response:
        sites = [gj.site_json(self.tenant, s) for s in self.tenant.sites]
        return self.listing(request, sites, "/sites/getAllSites", "sites")

    def _site_drives(self, request: Request, site: Site) -> Response:
        self.require(FILES_READ, SITES_READ)
        fields = select_fields(request)
        # The Site Pages library is a system drive: Graph lists it only when `system` is selected.
        show_system = bool(fields) and "system" in {f.lower() for f in fields}
        with self.tenant.lock:
            drives = [gj.drive_json(self.tenant, d.id) for d in site.drives if show_system or not d.system]
        return self.listing(request, drives, f"/sites/{site.id}/drives", "drives")

    def _page_nodes(self, site: Site) -> list[Node]:
        drive = self.tenant.pages_drive(site.id)
        return sorted(
            (n for n in self.tenant.walk(self.tenant.root(drive.id)) if n.page is not None), key=lambda n: n.name.lower()
        )

    def _pages(self, request: Request, site: Site) -> Response:
        self.require(SITES_READ)
        expand = expand_set(request)
        with self.tenant.lock:
            pages = [gj.page_json(self.tenant, site, node, expand) for node in self._page_nodes(site)]
        return self.listing(request, pages, f"/sites/{site.id}/pages", "sites('x')/pages")

    def _page(self, request: Request, site: Site, page_id: str) -> Response:
        self.require(SITES_READ)
        with self.tenant.lock:
            try:
                node = self.tenant.page_node(site.id, page_id)
            except KeyError:
                raise not_found(f"page {page_id}") from None
            return self.one(request, gj.page_json(self.tenant, site, node, expand_set(request)))

    # --- directory --------------------------------------------------------------------------

    def _user_routes(self, request: Request, rest: list[str]) -> tuple[str, Handler]:
        tenant = self.tenant
        if not rest:
            return "user", lambda: self._users_read(
                lambda: self.listing(request, [gj.user_json(u) for u in tenant.users], "/users", "users")
            )
        user_ref, sub = rest[0], [s.lower() for s in rest[1:]]
        if not sub:
            return "user", lambda: self._users_read(lambda: self.one(request, gj.user_json(self._user(user_ref))))
        if sub[0] in ("transitivememberof", "memberof") and (len(sub) == 1 or (len(sub) == 2 and sub[1] in GROUP_CASTS)):
            return "user", lambda: self._member_of(request, user_ref, transitive=sub[0] == "transitivememberof")
        raise not_found(request.path)

    def _users_read(self, handler: Handler) -> Response:
        self.require(USER_READ)
        return handler()

    def _user(self, ref: str) -> Any:
        try:
            return self.tenant.user(ref)
        except KeyError:
            raise GraphError(404, "Request_ResourceNotFound", f"Resource '{ref}' does not exist.") from None

    def _group(self, ref: str) -> Any:
        group = self.tenant.directory.groups.get(ref)
        if group is None:
            raise GraphError(404, "Request_ResourceNotFound", f"Resource '{ref}' does not exist.")
        return group

    def _member_of(self, request: Request, user_ref: str, *, transitive: bool) -> Response:
        self.require(GROUP_MEMBER_READ)
        user = self._user(user_ref)
        with self.tenant.lock:
            if transitive:
                ids = self.tenant.directory.transitive_group_ids(user.id)
            else:
                ids = {g.id for g in self.tenant.groups if user.id in g.member_user_ids}
            groups = [gj.group_json(g) for g in self.tenant.groups if g.id in ids]
        path = "/".join(["", "users", user.id] + request.segments[2:])
        return self.listing(request, groups, path, "directoryObjects")

    def _group_routes(self, request: Request, rest: list[str]) -> tuple[str, Handler]:
        if not rest:
            return "user", lambda: self._groups_read(
                lambda: self.listing(request, [gj.group_json(g) for g in self.tenant.groups], "/groups", "groups")
            )
        group_ref, sub = rest[0], [s.lower() for s in rest[1:]]
        if not sub:
            return "user", lambda: self._groups_read(lambda: self.one(request, gj.group_json(self._group(group_ref))))
        relation = sub[0]
        if relation in ("members", "transitivemembers", "owners") and (
            len(sub) == 1 or (len(sub) == 2 and sub[1] in GROUP_CASTS | USER_CASTS)
        ):
            cast = sub[1] if len(sub) == 2 else None
            return "user", lambda: self._group_members(request, group_ref, relation, cast)
        raise not_found(request.path)

    def _groups_read(self, handler: Handler) -> Response:
        self.require(GROUP_MEMBER_READ)
        return handler()

    def _group_members(self, request: Request, group_ref: str, relation: str, cast: str | None) -> Response:
        self.require(GROUP_MEMBER_READ)
        group = self._group(group_ref)
        directory = self.tenant.directory
        with self.tenant.lock:
            if relation == "owners":
                user_ids, group_ids = list(group.owner_ids), []
            elif relation == "members":
                user_ids, group_ids = list(group.member_user_ids), list(group.member_group_ids)
            else:
                users, groups = directory.transitive_member_ids(group.id)
                user_ids = [u for u in directory.users if u in users]
                group_ids = [g for g in directory.groups if g in groups]
            values = [] if cast in GROUP_CASTS else [gj.user_json(directory.users[u]) for u in user_ids]
            if cast not in USER_CASTS:
                values += [gj.group_json(directory.groups[g]) for g in group_ids]
        path = "/".join(["", "groups", group.id] + request.segments[2:])
        return self.listing(request, values, path, "directoryObjects")

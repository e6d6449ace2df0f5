"""The `/drives/{id}/...` routes: drives, items, children, delta, content and permissions."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sandbox import graph_json as gj
from sandbox.graph_common import FILES_READ, SITES_READ, GraphError, bad_request, expand_set, not_found
from sandbox.http_types import Request, Response, json_response
from sandbox.model import Node
from sandbox.paging import DELTA_PAGE_SIZE, delta_link_token, delta_page, next_link_token, parse_delta_token

if TYPE_CHECKING:
    from sandbox.graph import GraphApp

Handler = Callable[[], Response]

_DELTA = re.compile(r"^delta(?:\(\)|\(\s*token\s*=\s*'?(?P<token>[^')]*)'?\s*\))?$", re.I)
# Graph marks permission changes only when all three Prefer options come together.
_SHARING_PREFER = ("deltashowsharingchanges", "deltashowremovedasdeleted", "deltatraversepermissiongaps")
_PERMISSION_ERROR_CODES = {
    401: "InvalidAuthenticationToken",
    403: "accessDenied",
    404: "itemNotFound",
    429: "TooManyRequests",
    500: "generalException",
    503: "serviceNotAvailable",
}


class DriveRoutes:
    """Mixin of `GraphApp` for everything below `/drives/{drive-id}`."""

    def drive_routes(self: GraphApp, request: Request, drive_id: str, rest: list[str]) -> tuple[str, Handler]:
        """(stats kind, handler) for a path below `/drives/{drive_id}`."""
        if not self.tenant.has_drive(drive_id):
            raise not_found(f"drive {drive_id}")
        lowered = [s.lower() for s in rest]
        if not rest:
            return "drive", lambda: self._drive(request, drive_id)
        # `/root/<rest>` and `/items/root/<rest>` (and `/items/{rootId}/<rest>`) name the same item.
        if lowered[0] == "root":
            item_id, sub = "root", rest[1:]
        elif lowered[0] == "items" and len(rest) >= 2:
            item_id, sub = rest[1], rest[2:]
        else:
            raise not_found(request.path)
        if len(sub) == 1 and (match := _DELTA.match(sub[0])):
            if item_id != "root" and item_id != self.tenant.drive(drive_id).root_id:
                raise not_found("delta is only available on the root of a SharePoint library")
            return "delta", lambda: self.delta(request, drive_id, match["token"])
        sub_lowered = [s.lower() for s in sub]
        if not sub:
            return "other", lambda: self._item(request, drive_id, item_id)
        if sub_lowered == ["children"]:
            return "other", lambda: self._children(request, drive_id, item_id)
        if sub_lowered == ["content"]:
            return "download", lambda: self._content(drive_id, item_id)
        if sub_lowered == ["permissions"]:
            return "permissions", lambda: self._permissions(request, drive_id, item_id)
        raise not_found(request.path)

    def _live_node(self: GraphApp, drive_id: str, item_id: str) -> Node:
        try:
            node = self.tenant.node(drive_id, item_id)
        except KeyError:
            raise not_found(f"item {item_id}") from None
        if node.deleted:
            raise not_found(f"item {item_id}")
        return node

    def _drive(self: GraphApp, request: Request, drive_id: str) -> Response:
        self.require(FILES_READ, SITES_READ)
        with self.tenant.lock:
            return self.one(request, gj.drive_json(self.tenant, drive_id))

    def _item(self: GraphApp, request: Request, drive_id: str, item_id: str) -> Response:
        self.require(FILES_READ, SITES_READ)
        if "permissions" in expand_set(request):
            raise bad_request("Expanding permissions on a driveItem is not supported; list them instead.")
        with self.tenant.lock:
            node = self._live_node(drive_id, item_id)
            value = gj.item_json(self.tenant, node, download_url=self.server.download_url, with_path=True)
            if "children" in expand_set(request):
                value["children"] = [
                    gj.item_json(self.tenant, c, download_url=self.server.download_url, with_path=True)
                    for c in node.children
                    if not c.deleted
                ]
            return self.one(request, value)

    def _children(self: GraphApp, request: Request, drive_id: str, item_id: str) -> Response:
        self.require(FILES_READ, SITES_READ)
        with self.tenant.lock:
            node = self._live_node(drive_id, item_id)
            children = [
                gj.item_json(self.tenant, c, download_url=self.server.download_url, with_path=True)
                for c in node.children
                if not c.deleted
            ]
        path = f"/drives/{drive_id}/items/{node.item_id}/children"
        return self.listing(request, children, path, "Collection(driveItem)")

    def _content(self: GraphApp, drive_id: str, item_id: str) -> Response:
        self.require(FILES_READ, SITES_READ)
        with self.tenant.lock:
            node = self._live_node(drive_id, item_id)
            if node.is_folder:
                raise bad_request("A folder has no content to download.")
            location = self.server.download_url(node)
        # Graph answers with a redirect to a short-lived, pre-authenticated URL.
        return Response(302, {"Location": location, "Content-Length": "0"})

    def _permissions(self: GraphApp, request: Request, drive_id: str, item_id: str) -> Response:
        self.require(FILES_READ, SITES_READ)
        with self.tenant.lock:
            node = self._live_node(drive_id, item_id)
            status = self.server.faults.permission_errors.get(node.item_id)
            if status is not None:
                code = _PERMISSION_ERROR_CODES.get(status, "generalException")
                headers = {"Retry-After": str(self.server.faults.retry_after)} if status == 429 else None
                message = f"Permissions of item {node.item_id} are not available (sandbox fault)."
                raise GraphError(status, code, message, headers)
            site = self.tenant.site_of_drive(drive_id)
            # The EFFECTIVE set: the nearest item, folder, library or site with unique permissions.
            values = [gj.permission_json(self.tenant, site, g) for g in self.tenant.effective_grants(node)]
        context = f"/drives/{drive_id}/items/{node.item_id}/permissions"
        return self.listing(request, values, context, "Collection(permission)")

    def delta(self: GraphApp, request: Request, drive_id: str, token: str | None) -> Response:
        """One page of a drive's delta feed."""
        self.require(FILES_READ, SITES_READ)
        tenant = self.tenant
        token = token if token is not None else request.query.get("token")
        state = parse_delta_token(tenant, drive_id, token)
        if drive_id in self.server.faults.garbled_drives:
            page = b"<html><body>Access to this site is blocked by your proxy.</body></html>"
            return Response(200, {"Content-Type": "text/html"}, page)
        if drive_id in self.server.faults.gone_drives and state.incremental:
            restart = self.link(f"/drives/{drive_id}/root/delta")
            raise GraphError(
                410, "resyncRequired", "Resync required. Replace any local items with the server's version.",
                {"Location": restart},
            )  # fmt: skip
        select = request.query.get("select") or state.select
        top = int(request.query["top"]) if request.query.get("top", "").isdigit() else state.top
        if top is not None and top < 1:
            raise bad_request("$top must be positive")
        state = replace(state, select=select, top=top)
        page = delta_page(tenant, state, top or DELTA_PAGE_SIZE)
        fields = [f.strip() for f in select.split(",")] if select else None
        prefer = request.header("prefer").lower()
        sharing = all(option in prefer for option in _SHARING_PREFER)
        # With hierarchicalsharing, `shared` marks where a permission hierarchy starts; without
        # it, any item reachable through a sharing link carries it, inherited or not.
        hierarchical = "hierarchicalsharing" in prefer
        values = []
        with tenant.lock:
            for node in page.nodes:
                if node.deleted:
                    value = gj.deleted_item_json(tenant, node)
                else:
                    changed_acl = sharing and state.since is not None and node.perm_seq > state.since
                    value = gj.item_json(
                        tenant, node, download_url=self.server.download_url, with_path=False, shared_changed=changed_acl
                    )
                    if not hierarchical:
                        gj.flat_shared_facet(tenant, node, value)
                values.append(gj.select(value, fields, keep=("id", "@microsoft.graph.sharedChanged")))
        context = f"{self.server.graph_url}/$metadata#Collection(driveItem)"
        body: dict[str, Any] = {"@odata.context": context, "value": values}
        if page.next_state is not None:
            body["@odata.nextLink"] = self.link(f"/drives/{drive_id}/root/delta?token={next_link_token(page.next_state)}")
        else:
            link_token = delta_link_token(drive_id, page.delta_sequence, select, top)
            body["@odata.deltaLink"] = self.link(f"/drives/{drive_id}/root/delta?token={link_token}")
        return json_response(200, body)

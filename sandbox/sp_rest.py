"""The SharePoint REST routes the sandbox serves: site groups and their members.

They stand in for `https://{tenant}.sharepoint.com/sites/{site}/_api/...`, on the sandbox's own
host: replace the scheme and host of a site's `webUrl` with `SandboxServer.sharepoint_url`.

    GET {site}/_api/web
    GET {site}/_api/web/sitegroups
    GET {site}/_api/web/sitegroups/getbyid(5)            .../getbyname('HR Members')
    GET {site}/_api/web/sitegroups/getbyid(5)/users      .../getbyname('HR Members')/users
    GET {site}/_api/web/AssociatedOwnerGroup[/users]     (also AssociatedMemberGroup, AssociatedVisitorGroup)

`Accept: application/json;odata=nometadata` gives `{"value": [...]}`; `odata=verbose` gives
`{"d": {"results": [...]}}`. PrincipalType is 1 for a user, 4 for a security group (Entra
groups, M365 groups and the "everyone" claims), 8 for a SharePoint group.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from sandbox.http_types import Request, Response, json_response
from sandbox.model import SiteGroup

if TYPE_CHECKING:
    from sandbox.server import SandboxServer

REST_PATH = re.compile(r"^(?P<site>/(?:sites|teams)/[^/]+)?/_api/(?P<api>.*)$", re.I)
_GROUP_REF = re.compile(r"^sitegroups/(?:getbyid\((?P<id>\d+)\)|getbyname\('(?P<name>(?:[^']|'')*)'\))$", re.I)
_ASSOCIATED = {"associatedownergroup": "owners", "associatedmembergroup": "members", "associatedvisitorgroup": "visitors"}
_ACCESS_DENIED = "Access denied. You do not have permission to perform this action or access this resource."
_REST_ERROR_CODES = {
    403: "-2147024891, System.UnauthorizedAccessException",
    404: "-2146232832, Microsoft.SharePoint.SPException",
}


def rest_error(status: int, message: str) -> Response:
    """An error in SharePoint REST's `odata.error` shape."""
    code = _REST_ERROR_CODES.get(status, "-1, Microsoft.SharePoint.Client.ClientServiceException")
    return json_response(status, {"odata.error": {"code": code, "message": {"lang": "en-US", "value": message}}})


def handle_rest(server: SandboxServer, request: Request) -> Response:
    """Serve one SharePoint REST request (path as received, e.g. `/sites/hr/_api/web`)."""
    from sandbox.graph_common import SITES_FULL_CONTROL, SITES_READ

    match = REST_PATH.match(unquote(request.path))
    if match is None:
        return rest_error(404, "Not found.")
    if not ({SITES_READ, SITES_FULL_CONTROL} & set(server.granted_permissions)):
        return rest_error(403, _ACCESS_DENIED + f" This request requires {SITES_READ}.")
    tenant = server.tenant
    site_path = (match["site"] or "").lower()
    site = next((s for s in tenant.sites if s.path.lower() == site_path), None)
    if site is None:
        return rest_error(404, "The site does not exist in the sandbox tenant.")
    api = match["api"].strip("/")
    lowered = api.lower()
    verbose = "odata=verbose" in request.header("accept").lower()

    if lowered == "web":
        web = {"Id": site.web_guid, "Title": site.display_name, "Url": site.web_url, "ServerRelativeUrl": site.path}
        return _one(web, verbose)
    if lowered == "web/sitegroups":
        return _many([_group_json(g) for g in site.site_groups], verbose)
    if not lowered.startswith("web/"):
        return rest_error(404, f"Unsupported REST path: {api}")
    parts = api[4:].split("/")
    target: SiteGroup | None
    if parts[0].lower() in _ASSOCIATED:
        target = site.associated_group(_ASSOCIATED[parts[0].lower()])  # type: ignore[arg-type]
        rest = parts[1:]
    elif (ref := _GROUP_REF.match("/".join(parts[:2]))) is not None:
        if ref["id"] is not None:
            target = site.site_group(int(ref["id"]))
        else:
            name = ref["name"].replace("''", "'").lower()
            target = next((g for g in site.site_groups if g.title.lower() == name), None)
        rest = parts[2:]
    else:
        return rest_error(404, f"Unsupported REST path: {api}")
    if target is None:
        return rest_error(404, "Group cannot be found.")
    if not rest:
        return _one(_group_json(target), verbose)
    if [r.lower() for r in rest] != ["users"]:
        return rest_error(404, f"Unsupported REST path: {api}")
    status = server.faults.site_group_errors.get(target.id)
    if status is not None:
        return rest_error(status, _ACCESS_DENIED if status == 403 else "The site group is not available (sandbox fault).")
    with tenant.lock:
        users = [_principal_json(server, claim) for claim in target.member_claims]
    return _many(users, verbose)


def _group_json(group: SiteGroup) -> dict[str, Any]:
    return {
        "Id": group.id,
        "Title": group.title,
        "LoginName": group.login_name,
        "Description": group.description,
        "PrincipalType": 8,
        "OnlyAllowMembersViewMembership": False,
        "IsHiddenInUI": False,
    }


def _principal_json(server: SandboxServer, claim: str) -> dict[str, Any]:
    title, principal_type, email = server.tenant.describe_claim(claim)
    return {
        "Id": server.tenant.principal_id(claim),
        "LoginName": claim,
        "Title": title,
        "PrincipalType": principal_type,
        "Email": email,
        "IsSiteAdmin": False,
        "IsHiddenInUI": False,
    }


def _one(value: dict[str, Any], verbose: bool) -> Response:
    return json_response(200, {"d": value} if verbose else value)


def _many(values: list[dict[str, Any]], verbose: bool) -> Response:
    return json_response(200, {"d": {"results": values}} if verbose else {"value": values})

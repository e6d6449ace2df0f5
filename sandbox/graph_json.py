"""Microsoft Graph v1.0 JSON shapes of the tenant's objects, as the real service writes them.

Shapes follow the Graph resource docs (driveItem, drive, site, permission, sitePage, user,
group); notes/platform-facts.md lists the details that matter to spindex.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable
from typing import Any

from sandbox.model import Grant, Group, Node, Site, User
from sandbox.content import mime_type_for
from sandbox.ids import derived_guid
from sandbox.tenant import Tenant

JsonObject = dict[str, Any]
DownloadUrl = Callable[[Node], str]

SITE_PAGE_CONTENT_TYPE = "0x0101009D1CB255DA76424F860D91F20E6C4118"


def error(code: str, message: str) -> JsonObject:
    """Graph's error body."""
    return {"error": {"code": code, "message": message, "innerError": {"request-id": "sandbox"}}}


def select(obj: JsonObject, fields: list[str] | None, *, keep: Iterable[str] = ("id",)) -> JsonObject:
    """Only the `$select`ed top-level properties (plus `keep` and instance annotations)."""
    if not fields:
        return obj
    wanted = {f.lower() for f in fields} | {k.lower() for k in keep}
    return {k: v for k, v in obj.items() if k.lower() in wanted or k.startswith("@odata.type")}


def _identity(tenant: Tenant, user_id: str | None) -> JsonObject | None:
    if not user_id:
        return None
    try:
        user = tenant.user(user_id)
    except KeyError:
        return None
    return {"user": {"id": user.id, "displayName": user.display_name, "email": user.mail or user.upn}}


def site_json(tenant: Tenant, site: Site) -> JsonObject:
    """A site resource."""
    return {
        "id": site.id,
        "name": site.name,
        "displayName": site.display_name,
        "description": site.description,
        "webUrl": site.web_url,
        "createdDateTime": _iso_base(tenant),
        "lastModifiedDateTime": _iso_base(tenant),
        "siteCollection": {"hostname": tenant.hostname},
        "sharepointIds": {
            "siteId": site.site_guid,
            "siteUrl": site.web_url,
            "tenantId": tenant.tenant_id,
            "webId": site.web_guid,
        },
    }


def root_site_json(tenant: Tenant) -> JsonObject:
    """The tenant's root site (`/sites/root`): a site with no libraries in the sandbox."""
    site_guid = derived_guid(tenant.tenant_id, "root-site")
    web_guid = derived_guid(tenant.tenant_id, "root-web")
    return {
        "id": f"{tenant.hostname},{site_guid},{web_guid}",
        "name": "",
        "displayName": "Communication site",
        "description": "",
        "webUrl": f"https://{tenant.hostname}",
        "createdDateTime": _iso_base(tenant),
        "lastModifiedDateTime": _iso_base(tenant),
        "root": {},
        "siteCollection": {"hostname": tenant.hostname, "root": {}},
    }


def _iso_base(tenant: Tenant) -> str:
    return tenant.base_time.strftime("%Y-%m-%dT%H:%M:%SZ")


def drive_json(tenant: Tenant, drive_id: str) -> JsonObject:
    """A drive resource; the Site Pages library carries the `system` facet."""
    drive = tenant.drive(drive_id)
    root = tenant.root(drive_id)
    body: JsonObject = {
        "id": drive.id,
        "name": drive.name,
        "description": drive.description,
        "driveType": "documentLibrary",
        "webUrl": drive.web_url,
        "createdDateTime": root.created,
        "lastModifiedDateTime": max((n.modified for n in tenant.walk(root)), default=root.modified),
        "owner": {"group": {"displayName": tenant.site_of_drive(drive_id).display_name}},
    }
    if drive.system:
        body["system"] = {}
    return body


def item_json(
    tenant: Tenant, node: Node, *, download_url: DownloadUrl, with_path: bool, shared_changed: bool = False
) -> JsonObject:
    """A driveItem. `with_path` adds `parentReference.path` (item GET does, delta does not)."""
    drive = tenant.drive(node.drive_id)
    site = tenant.site_of_drive(node.drive_id)
    parent: JsonObject = {"driveType": "documentLibrary", "driveId": node.drive_id}
    if node.parent_id:
        parent["id"] = node.parent_id
        if with_path:
            inner = tenant.folder_path(node)
            parent["path"] = f"/drives/{node.drive_id}/root:" + ("" if inner == "/" else inner)
    parent["siteId"] = site.id
    body: JsonObject = {
        "id": node.item_id,
        "name": node.name,
        "eTag": node.etag,
    }
    if not node.is_folder:
        body["cTag"] = node.ctag
    body.update(
        {
            "size": tenant.size_of(node),
            "webUrl": tenant.web_url(node),
            "createdDateTime": node.created,
            "lastModifiedDateTime": node.modified,
        }
    )
    if (created_by := _identity(tenant, node.author_id)) is not None:
        body["createdBy"] = created_by
    if (modified_by := _identity(tenant, node.editor_id or node.author_id)) is not None:
        body["lastModifiedBy"] = modified_by
    body["parentReference"] = parent
    if node.is_folder:
        body["folder"] = {"childCount": sum(1 for c in node.children if not c.deleted)}
    else:
        body["file"] = {"mimeType": mime_type_for(node.name)}
    if node.kind == "root":
        body["root"] = {}
    body["sharepointIds"] = {
        "listId": drive.list_id,
        "listItemId": str(node.list_item_id),
        "listItemUniqueId": node.guid,
        "siteId": site.site_guid,
        "siteUrl": site.web_url,
        "tenantId": tenant.tenant_id,
        "webId": site.web_guid,
    }
    if node.grants is not None and node.kind != "root":
        widest = _widest_link_scope(node.grants)
        body["shared"] = {"scope": widest} if widest else {}
    if not node.is_folder:
        body["@microsoft.graph.downloadUrl"] = download_url(node)
    if shared_changed:
        body["@microsoft.graph.sharedChanged"] = "True"
    return body


def _widest_link_scope(grants: Iterable[Grant]) -> str | None:
    """The widest scope of the sharing links among `grants`, as the `shared` facet names it."""
    scopes = {g.link.scope for g in grants if g.link is not None}
    return next((s for s in ("anonymous", "organization", "users") if s in scopes), None)


def flat_shared_facet(tenant: Tenant, node: Node, body: JsonObject) -> None:
    """The `shared` facet as delta gives it without `Prefer: hierarchicalsharing`: on every item
    whose effective permissions include a sharing link, whether unique or inherited."""
    if "shared" in body or node.kind == "root":
        return
    widest = _widest_link_scope(tenant.effective_grants(node))
    if widest is not None:
        body["shared"] = {"scope": widest}


def deleted_item_json(tenant: Tenant, node: Node) -> JsonObject:
    """A deleted driveItem as delta reports it: no name, no cTag (as on OneDrive for Business)."""
    body: JsonObject = {
        "id": node.item_id,
        "deleted": {"state": "deleted"},
        "parentReference": {
            "driveType": "documentLibrary",
            "driveId": node.drive_id,
            "id": node.parent_id,
            "siteId": tenant.site_of_drive(node.drive_id).id,
        },
        "lastModifiedDateTime": node.modified,
    }
    # The file/folder facet stays: with `deleted` left out of $select, it is all that is left.
    body["folder" if node.is_folder else "file"] = {}
    return body


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode().rstrip("=")


def _user_identity(tenant: Tenant, user: User) -> JsonObject:
    return {
        "user": {"id": user.id, "displayName": user.display_name, "email": user.mail or user.upn},
        "siteUser": {
            "id": str(tenant.principal_id(user.login_name)),
            "displayName": user.display_name,
            "loginName": user.login_name,
        },
    }


def _group_identity(tenant: Tenant, group: Group) -> JsonObject:
    return {
        "group": {"id": group.id, "displayName": group.display_name, "email": group.mail or ""},
        "siteUser": {
            "id": str(tenant.principal_id(group.login_name)),
            "displayName": group.display_name,
            "loginName": group.login_name,
        },
    }


def permission_json(tenant: Tenant, site: Site, grant: Grant) -> JsonObject:
    """One permission entry in Graph's shape (grantedToV2 / link + grantedToIdentitiesV2)."""
    roles = [grant.role]
    if grant.user_id is not None:
        user = tenant.user(grant.user_id)
        return {"id": _b64(user.login_name), "roles": roles, "grantedToV2": _user_identity(tenant, user)}
    if grant.group_id is not None:
        group = tenant.group(grant.group_id)
        return {"id": _b64(group.login_name), "roles": roles, "grantedToV2": _group_identity(tenant, group)}
    if grant.site_group_id is not None:
        site_group = site.site_group(grant.site_group_id)
        title = site_group.title if site_group else str(grant.site_group_id)
        return {
            "id": _b64(str(grant.site_group_id)),
            "roles": roles,
            "grantedToV2": {"siteGroup": {"id": str(grant.site_group_id), "displayName": title, "loginName": title}},
        }
    assert grant.link is not None
    link = grant.link
    letter = "w" if link.type == "edit" else "r"
    body: JsonObject = {
        "id": link.id,
        "roles": roles,
        "shareId": "u!" + _b64(link.id),
        "hasPassword": False,
        "link": {
            "type": link.type,
            "scope": link.scope,
            "webUrl": f"https://{tenant.hostname}/:{letter}:/s/{site.name}/{_b64(link.id)[:22]}",
            "preventsDownload": False,
        },
    }
    if link.scope == "users":
        body["grantedToIdentitiesV2"] = [_user_identity(tenant, tenant.user(r)) for r in link.recipient_ids]
    return body


def page_json(tenant: Tenant, site: Site, node: Node, expand: set[str]) -> JsonObject:
    """A sitePage; `expand` may hold "canvaslayout" and/or "webparts"."""
    assert node.page is not None
    page = node.page
    webparts = [
        {"@odata.type": "#microsoft.graph.textWebPart", "id": part_id, "innerHtml": html}
        for part_id, html in page.webparts
    ]
    body: JsonObject = {
        "@odata.type": "#microsoft.graph.sitePage",
        "id": page.page_id,
        "name": node.name,
        "title": page.title,
        "webUrl": tenant.web_url(node),
        "eTag": node.etag,
        "createdDateTime": node.created,
        "lastModifiedDateTime": node.modified,
        "description": (node.text or "").split("\n", 1)[-1][:255],
        "pageLayout": "article",
        "promotionKind": "page",
        "showComments": True,
        "showRecommendedPages": False,
        "contentType": {"id": SITE_PAGE_CONTENT_TYPE, "name": "Site Page"},
        "parentReference": {"siteId": site.id},
        "publishingState": {"level": "published", "versionId": f"{node.version}.0"},
    }
    if (modified_by := _identity(tenant, node.editor_id or node.author_id)) is not None:
        body["lastModifiedBy"] = modified_by
    if "canvaslayout" in expand:
        body["canvasLayout"] = {
            "horizontalSections": [
                {
                    "layout": "oneColumn",
                    "id": "1",
                    "emphasis": "none",
                    "columns": [{"id": "1", "width": 12, "webparts": webparts}],
                }
            ]
        }
    if "webparts" in expand:
        body["webParts"] = webparts
    return body


def user_json(user: User) -> JsonObject:
    """A user resource."""
    return {
        "@odata.type": "#microsoft.graph.user",
        "id": user.id,
        "displayName": user.display_name,
        "userPrincipalName": user.upn,
        "mail": user.mail or user.upn,
        "userType": "Guest" if user.is_guest else "Member",
        "accountEnabled": True,
    }


def group_json(group: Group) -> JsonObject:
    """A group resource; M365 groups carry `groupTypes: ["Unified"]`."""
    unified = group.kind == "m365"
    nickname = "".join(c for c in group.display_name if c.isalnum())
    return {
        "@odata.type": "#microsoft.graph.group",
        "id": group.id,
        "displayName": group.display_name,
        "mail": group.mail,
        "mailNickname": nickname,
        "mailEnabled": unified,
        "securityEnabled": not unified,
        "groupTypes": ["Unified"] if unified else [],
    }

"""Read a YAML tenant file into a `Tenant`: schema check first, then names resolved to ids.

Errors name the offending place in the file, e.g.
`demo.yaml: $.sites[0].libraries[0].items[2]: 'sample' is a required property`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from sandbox import samples
from sandbox.model import (
    EVERYONE_CLAIM,
    EVERYONE_EXCEPT_GUESTS_CLAIM,
    M365_GROUP_CLAIM,
    M365_OWNERS_SUFFIX,
    SECURITY_GROUP_CLAIM,
    USER_CLAIM,
    Drive,
    Grant,
    Group,
    Link,
    Node,
    PageContent,
    Site,
    SiteGroup,
    User,
)
from sandbox.ids import derived_guid, derived_item_id, iso
from sandbox.tenant import DEFAULT_BASE_TIME, DemoQuestion, Tenant

TENANTS_DIR = Path(__file__).parent / "tenants"
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "tenant.schema.json"


class TenantFileError(ValueError):
    """A tenant file is malformed or refers to something it does not define."""


@lru_cache(maxsize=1)
def tenant_schema() -> dict[str, Any]:
    """The JSON schema every tenant file must satisfy."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def _json_path(parts: Any) -> str:
    path = "$"
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def validate_document(document: Any, source: str = "tenant file") -> None:
    """Check a parsed tenant file against the schema; TenantFileError names the bad path."""
    validator = jsonschema.Draft202012Validator(tenant_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(document))
    if error is not None:
        raise TenantFileError(f"{source}: {_json_path(error.absolute_path)}: {error.message}")


def resolve_path(path_or_name: str | Path) -> Path:
    """A tenant file path, or the shipped tenant of that name (`demo` -> tenants/demo.yaml)."""
    candidate = Path(path_or_name)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        return candidate
    shipped = TENANTS_DIR / f"{path_or_name}.yaml"
    if not shipped.exists():
        known = ", ".join(sorted(p.stem for p in TENANTS_DIR.glob("*.yaml")))
        raise TenantFileError(f"no tenant file {path_or_name!r} (shipped tenants: {known})")
    return shipped


def load_tenant_file(path_or_name: str | Path = "demo") -> Tenant:
    """Load, validate and build a tenant from a YAML file (or a shipped tenant's name)."""
    path = resolve_path(path_or_name)
    text = path.read_text(encoding="utf-8")
    try:
        # libyaml's loader when present: the pure-Python one takes most of the load time.
        document = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise TenantFileError(f"{path.name}: not valid YAML: {exc}") from exc
    # Schema validation is the slowest step of a load; the same text needs it only once.
    digest = hashlib.sha256(text.encode()).hexdigest()
    tenant = build_tenant(document, source=path, validate=digest not in _VALIDATED)
    _VALIDATED.add(digest)
    return tenant


_VALIDATED: set[str] = set()


def build_tenant(document: Any, source: Path | None = None, *, validate: bool = True) -> Tenant:
    """Build a tenant from an already parsed tenant document (a dict, as YAML gives it)."""
    where = source.name if source else "tenant file"
    if validate:
        validate_document(document, where)
    return _Builder(document, where, source).build()


class _Builder:
    def __init__(self, document: dict[str, Any], where: str, source: Path | None) -> None:
        self.doc = document
        self.where = where
        self.source = source

    def fail(self, path: str, message: str) -> TenantFileError:
        return TenantFileError(f"{self.where}: {path}: {message}")

    def build(self) -> Tenant:
        info = self.doc["tenant"]
        tenant_id = info.get("id") or derived_guid("tenant", info["hostname"])
        base = info.get("base_time")
        base_time = (
            datetime.strptime(base, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc) if base else DEFAULT_BASE_TIME
        )
        users = self._users(tenant_id)
        groups = [
            Group(
                id=raw.get("id") or derived_guid(tenant_id, "group", raw["name"]),
                display_name=raw["name"], kind=raw["kind"], mail=raw.get("mail"),
            )  # fmt: skip
            for raw in self.doc.get("groups", [])
        ]
        self._unique([g.id for g in groups] + [u.id for u in users], "$.groups", "object id")
        self._unique([g.display_name.lower() for g in groups], "$.groups", "group name")
        tenant = Tenant(tenant_id, info["name"], info["hostname"], users, groups, base_time=base_time, source=self.source)
        self.tenant = tenant
        self.when = iso(base_time)
        for n, raw in enumerate(self.doc.get("groups", [])):
            self._memberships(groups[n], raw, f"$.groups[{n}]")
        for user in users:
            tenant.principal_id(user.login_name)
        for group in groups:
            tenant.principal_id(group.login_name)
        for n, raw in enumerate(self.doc["sites"]):
            self._site(raw, f"$.sites[{n}]")
        self._unique([s.id for s in tenant.sites], "$.sites", "site id")
        self._unique([s.path.lower() for s in tenant.sites], "$.sites", "site path")
        for n, raw in enumerate(self.doc.get("demo_questions", [])):
            self._question(raw, f"$.demo_questions[{n}]")
        tenant.finish_loading()
        return tenant

    def _unique(self, values: list[str], path: str, what: str) -> None:
        seen: set[str] = set()
        for value in values:
            if value in seen:
                raise self.fail(path, f"duplicate {what} {value!r}")
            seen.add(value)

    def _users(self, tenant_id: str) -> list[User]:
        users = [
            User(
                id=raw.get("id") or derived_guid(tenant_id, "user", raw["upn"].lower()),
                upn=raw["upn"], display_name=raw["display_name"],
                is_guest=bool(raw.get("guest", False)), mail=raw.get("mail") or raw["upn"],
            )  # fmt: skip
            for raw in self.doc["users"]
        ]
        self._unique([u.upn.lower() for u in users], "$.users", "UPN")
        return users

    def _memberships(self, group: Group, raw: dict[str, Any], path: str) -> None:
        for n, ref in enumerate(raw.get("members", [])):
            kind, member_id = self._member(ref, f"{path}.members[{n}]")
            (group.member_user_ids if kind == "user" else group.member_group_ids).append(member_id)
        for n, ref in enumerate(raw.get("owners", [])):
            group.owner_ids.append(self._user_id(ref, f"{path}.owners[{n}]"))

    def _member(self, ref: str | dict[str, str], path: str) -> tuple[str, str]:
        if isinstance(ref, dict):
            if "user" in ref:
                return "user", self._user_id(ref["user"], path)
            return "group", self._group(ref["group"], path).id
        try:
            return "user", self.tenant.user(ref).id
        except KeyError:
            pass
        try:
            return "group", self.tenant.group(ref).id
        except KeyError:
            raise self.fail(path, f"{ref!r} is neither a user nor a group of this tenant") from None

    def _user_id(self, ref: str, path: str) -> str:
        try:
            return self.tenant.user(ref).id
        except KeyError:
            raise self.fail(path, f"unknown user {ref!r}") from None

    def _group(self, ref: str, path: str) -> Group:
        try:
            return self.tenant.group(ref)
        except KeyError:
            raise self.fail(path, f"unknown group {ref!r}") from None

    # --- sites ---------------------------------------------------------------------------

    def _site(self, raw: dict[str, Any], path: str) -> None:
        tenant = self.tenant
        site_path = raw["path"]
        site_id = raw.get("id") or ",".join(
            [tenant.hostname, derived_guid(tenant.tenant_id, "site", site_path.lower()),
             derived_guid(tenant.tenant_id, "web", site_path.lower())]
        )  # fmt: skip
        if not site_id.startswith(tenant.hostname + ","):
            raise self.fail(f"{path}.id", f"a site id starts with the tenant host name {tenant.hostname!r}")
        site = Site(
            id=site_id, name=raw.get("name") or site_path.rsplit("/", 1)[-1],
            display_name=raw["display_name"], web_url=f"https://{tenant.hostname}{site_path}",
            path=site_path, description=raw.get("description", ""),
        )  # fmt: skip
        tenant.sites.append(site)
        for n, group_raw in enumerate(raw.get("site_groups", [])):
            members = enumerate(group_raw.get("members", []))
            claims = [self._claim(c, f"{path}.site_groups[{n}].members[{m}]") for m, c in members]
            site.site_groups.append(
                SiteGroup(
                    id=group_raw["id"], title=group_raw["title"], member_claims=claims,
                    associated=group_raw.get("associated"), description=group_raw.get("description", ""),
                )  # fmt: skip
            )
        self._unique([str(g.id) for g in site.site_groups], f"{path}.site_groups", "site group id")
        if "permissions" in raw:
            site.grants = self.grants(site, raw["permissions"], f"{path}.permissions") or []
        else:
            defaults = (("owners", "owner"), ("members", "write"), ("visitors", "read"))
            site.grants = [
                Grant(role=role, site_group_id=group.id)  # type: ignore[arg-type]
                for which, role in defaults
                if (group := site.associated_group(which)) is not None  # type: ignore[arg-type]
            ]
        for n, library in enumerate(raw.get("libraries", [])):
            self._library(site, library, f"{path}.libraries[{n}]")
        self._pages(site, raw, path)

    def _drive_id(self, site: Site, name: str) -> str:
        # Real drive ids are `b!` + base64url of the site, web and list GUIDs; so are these.
        raw = b"".join(uuid.UUID(g).bytes for g in (site.site_guid, site.web_guid, derived_guid(site.id, "list", name)))
        return "b!" + base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def _library(self, site: Site, raw: dict[str, Any], path: str) -> None:
        drive_id = raw.get("id") or self._drive_id(site, raw["name"])
        if self.tenant.has_drive(drive_id):
            raise self.fail(f"{path}.id", f"duplicate drive id {drive_id!r}")
        url_name = raw.get("url_name") or raw["name"]
        drive = Drive(
            id=drive_id, name=raw["name"], web_url=f"{site.web_url}/{url_name.replace(' ', '%20')}",
            system=False, site_id=site.id, url_name=url_name, list_id=derived_guid(drive_id, "list"),
            root_id=derived_item_id(drive_id, "root"), description=raw.get("description", ""),
        )  # fmt: skip
        grants = self.grants(site, raw.get("permissions"), f"{path}.permissions")
        root = self.tenant.register_drive(site, drive, grants, self.when)
        for n, entry in enumerate(raw.get("items", [])):
            self._entry(site, root, entry, f"{path}.items[{n}]")

    def _entry(self, site: Site, parent: Node, raw: dict[str, Any], path: str) -> None:
        grants = self.grants(site, raw.get("permissions"), f"{path}.permissions")
        when = raw.get("modified") or self.when
        name = raw.get("folder") or raw["file"]
        key = f"{self.tenant.folder_path(parent)}/{parent.name}/{name}"
        item_id = raw.get("id") or derived_item_id(parent.drive_id, key)
        try:
            if "folder" in raw:
                node = self.tenant.create_node(parent, name, "folder", item_id=item_id, grants=grants, when=when)
                for n, child in enumerate(raw.get("children", [])):
                    self._entry(site, node, child, f"{path}.children[{n}]")
                return
            author = self._user_id(raw["author"], f"{path}.author") if "author" in raw else None
            rendered = self._file_content(raw, path)
            self.tenant.create_node(
                parent, name, "file", item_id=item_id, rendered=rendered, grants=grants, when=when, author_id=author
            )
        except ValueError as exc:
            raise self.fail(path, str(exc)) from None

    def _file_content(self, raw: dict[str, Any], path: str) -> samples.Rendered:
        name = raw["file"]
        if "text" in raw:
            return samples.render_text(raw["text"], name)
        if "sample" in raw:
            try:
                return samples.render_sample(raw["sample"], name)
            except KeyError:
                known = ", ".join(samples.sample_names())
                raise self.fail(f"{path}.sample", f"unknown sample {raw['sample']!r} (known: {known})") from None
        if "oversize" in raw:
            return samples.oversize(name, raw["oversize"])
        if "binary" in raw:
            return samples.binary(name, raw["binary"])
        bad = raw["bad"]
        if bad == "corrupt_pdf":
            return samples.corrupt_pdf(name)
        if bad == "encrypted_pdf":
            return samples.encrypted_pdf(name)
        return samples.empty_file(name)

    def _pages(self, site: Site, raw: dict[str, Any], path: str) -> None:
        library = raw.get("pages_library", {})
        drive_id = library.get("id") or self._drive_id(site, "Site Pages")
        drive = Drive(
            id=drive_id, name="Site Pages", web_url=f"{site.web_url}/SitePages", system=True,
            site_id=site.id, url_name="SitePages", list_id=derived_guid(drive_id, "list"),
            root_id=derived_item_id(drive_id, "root"),
        )  # fmt: skip
        grants = self.grants(site, library.get("permissions"), f"{path}.pages_library.permissions")
        root = self.tenant.register_drive(site, drive, grants, self.when)
        for n, page in enumerate(raw.get("pages", [])):
            page_path = f"{path}.pages[{n}]"
            page_id = page.get("id") or derived_guid(site.id, "page", page["name"].lower())
            try:
                node = self.tenant.create_node(
                    root, page["name"], "page", item_id=derived_item_id(drive_id, page_id),
                    rendered=samples.render_page(page["title"], page["webparts"]),
                    grants=self.grants(site, page.get("permissions"), f"{page_path}.permissions"),
                    when=page.get("modified") or self.when,
                )  # fmt: skip
            except ValueError as exc:
                raise self.fail(page_path, str(exc)) from None
            node.guid = page_id  # a Site Pages item's listItemUniqueId is the sitePage id
            parts = [(derived_guid(page_id, "webpart", str(m)), html) for m, html in enumerate(page["webparts"])]
            node.page = PageContent(page_id=page_id, title=page["title"], webparts=parts)
            self.tenant.register_page(site, node)

    # --- permissions -----------------------------------------------------------------------

    def grants(self, site: Site, raw: Any, path: str) -> list[Grant] | None:
        if raw is None or raw == "inherit":
            return None
        return [self._grant(site, g, f"{path}[{n}]") for n, g in enumerate(raw)]

    def _grant(self, site: Site, raw: dict[str, Any], path: str) -> Grant:
        try:
            return parse_grant(self.tenant, site, raw, path)
        except KeyError as exc:
            raise self.fail(path, str(exc.args[0])) from None

    def _claim(self, raw: str | dict[str, Any], path: str) -> str:
        if isinstance(raw, str):
            if "|" in raw:
                return raw
            return USER_CLAIM + self.tenant.user(self._user_id(raw, path)).upn.lower()
        (key, value), = raw.items()
        if key == "user":
            return USER_CLAIM + self.tenant.user(self._user_id(value, path)).upn.lower()
        if key == "everyone":
            return EVERYONE_CLAIM
        if key == "everyone_except_guests":
            return EVERYONE_EXCEPT_GUESTS_CLAIM + self.tenant.tenant_id
        group = self._group(value, path)
        if key == "group":
            return group.login_name
        if key == "security_group":
            return SECURITY_GROUP_CLAIM + group.id
        if group.kind != "m365":
            raise self.fail(path, f"{group.display_name!r} is a security group; {key} needs an M365 group")
        return M365_GROUP_CLAIM + group.id + (M365_OWNERS_SUFFIX if key == "m365_owners" else "")

    def _question(self, raw: dict[str, str], path: str) -> None:
        for key in ("visible_to", "hidden_from"):
            self._user_id(raw[key], f"{path}.{key}")
        try:
            self.tenant.find_item(raw["document"])
        except (KeyError, ValueError) as exc:
            raise self.fail(f"{path}.document", f"{raw['document']!r}: {exc}") from None
        self.tenant.demo_questions.append(DemoQuestion(**raw))


def parse_grant(tenant: Tenant, site: Site, raw: dict[str, Any], path: str) -> Grant:
    """One grant in tenant-file form (`{user|group|site_group|link: ..., role}`) as a `Grant`.

    KeyError names what could not be resolved.
    """
    role = raw.get("role", "read")
    if "user" in raw:
        return Grant(role=role, user_id=_lookup_user(tenant, raw["user"]))
    if "group" in raw:
        try:
            return Grant(role=role, group_id=tenant.group(raw["group"]).id)
        except KeyError:
            raise KeyError(f"unknown group {raw['group']!r}") from None
    if "site_group" in raw:
        ref = raw["site_group"]
        found = next(
            (g for g in site.site_groups if g.id == ref or (isinstance(ref, str) and g.title.lower() == ref.lower())),
            None,
        )
        if found is None:
            raise KeyError(f"site {site.name!r} has no site group {ref!r}")
        return Grant(role=role, site_group_id=found.id)
    link = raw["link"]
    recipients = tuple(_lookup_user(tenant, r) for r in link.get("recipients", []))
    link_id = derived_guid(site.id, path, link["type"], link["scope"], *recipients)
    return Grant(
        role="write" if link["type"] == "edit" else "read",
        link=Link(id=link_id, type=link["type"], scope=link["scope"], recipient_ids=recipients),
    )


def _lookup_user(tenant: Tenant, ref: str) -> str:
    try:
        return tenant.user(ref).id
    except KeyError:
        raise KeyError(f"unknown user {ref!r}") from None

"""`spindex doctor`: can spindex do its work here? One line per check, and for each problem what to fix.

Checks, in order: the configuration loads; Graph issues a token; each Graph application
permission spindex needs, probed with the call that needs it (sites -> Sites.Read.All; a
library's delta and an item's permissions -> Files.Read.All or Sites.Read.All; `users/{id}`
-> User.Read.All; `users/{id}/transitiveMemberOf` -> GroupMember.Read.All); SharePoint REST site
groups (SharePoint's own Sites.Read.All, and a certificate for app-only); the index behind the
alias; the state store (a probe cursor written, read and deleted under a probe lease); the
embedder (one tiny embedding, unless offline).

Directory probes use `--user` when given, else a user found in the probed item's permissions,
else an id that exists nowhere: a 404 then proves the permission was granted, because Graph
checks the app's permission before it looks the user up.

Exit codes: 0 every check passed (warnings allowed), 1 a check failed, 2 the configuration
does not load. Lines hold settings names, ids and service messages, never secret values (and
are redacted on top of that).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ingest.config import GRAPH_SCOPE, Settings, load_settings
from ingest.errors import (
    AuthError,
    ConfigError,
    ItemUnavailable,
    PermissionsUnreadable,
    SourceUnavailable,
    SpindexError,
    SystemicError,
)
from ingest.observability import check_otel, redact, register_settings_secrets
from ingest.report import EXIT_CONFIG, EXIT_OK
from ingest.retry import Retrier, RetryPolicy

EXIT_CHECK_FAILED = 1
PROBE_STATE_KEY = "spindex-doctor-probe"
PROBE_USER_ID = "00000000-0000-0000-0000-000000000000"  # exists in no tenant
PROBE_SITE_GROUP = "3"  # any id will do: 200 or 404 both prove access to SharePoint REST
PROBE_DELTA_PAGES = 3
Status = Literal["ok", "warn", "fail", "skip"]
_TAGS = {"ok": "ok  ", "warn": "warn", "fail": "FAIL", "skip": "skip"}
_HTTP_STATUS = re.compile(r"HTTP (\d{3})")


def grant(permission: str, *, alternative: str = "") -> str:
    """How to grant a Microsoft Graph application permission."""
    return f"grant the app the Microsoft Graph application permission {permission}{alternative} and give admin consent"


SHAREPOINT_GRANT = (
    "grant the app the SharePoint application permission Sites.Read.All "
    "(API 'Office 365 SharePoint Online') and give admin consent"
)
SHAREPOINT_CERTIFICATE = (
    "app-only SharePoint REST accepts only certificate-based tokens: set graph.auth=certificate "
    "with graph.certificate_path (or use a managed or workload identity)"
)
SIGN_IN_FIX = {
    "sandbox": "check graph.base_url points at a running sandbox and graph.client_id/graph.client_secret match it",
    "client_secret": "check graph.tenant_id, graph.client_id and graph.client_secret (an expired secret is the usual cause)",
    "certificate": "check graph.tenant_id, graph.client_id, and that the certificate in graph.certificate_path is uploaded to the app registration",
    "managed_identity": "run where a managed identity is assigned; for a user-assigned one set graph.client_id to its client id",
    "workload_identity": "check AZURE_FEDERATED_TOKEN_FILE, graph.client_id, and the federated credential on the app registration",
    "azure_cli": "run `az login` (add --tenant with graph.tenant_id)",
}


@dataclass(frozen=True, slots=True)
class Check:
    """The outcome of one check: what was seen, and for a problem, what to do."""

    name: str
    status: Status
    detail: str
    fix: str | None = None

    def line(self) -> str:
        """One printable line, secrets masked."""
        text = f"{_TAGS[self.status]}  {self.name}: {self.detail}"
        if self.fix:
            text += f"; fix: {self.fix}"
        return redact(text)


@dataclass
class Diagnosis:
    """Every check of one doctor run."""

    checks: list[Check] = field(default_factory=list)

    def add(self, name: str, status: Status, detail: str, fix: str | None = None) -> Check:
        """Record one check."""
        check = Check(name, status, detail, fix)
        self.checks.append(check)
        return check

    @property
    def problems(self) -> list[Check]:
        """The failed checks."""
        return [c for c in self.checks if c.status == "fail"]

    @property
    def exit_code(self) -> int:
        """0 all passed, 2 configuration does not load, 1 another check failed."""
        if any(c.name == "configuration" and c.status == "fail" for c in self.checks):
            return EXIT_CONFIG
        return EXIT_CHECK_FAILED if self.problems else EXIT_OK

    def lines(self) -> list[str]:
        """One line per check."""
        return [c.line() for c in self.checks]


def _status(exc: BaseException) -> int | None:
    code = getattr(exc, "status_code", None)
    if isinstance(code, int):
        return code
    match = _HTTP_STATUS.search(str(exc))
    return int(match.group(1)) if match else None


def _describe(exc: BaseException) -> str:
    """A short, secret-free description of a failure."""
    if isinstance(exc, SpindexError):
        return str(exc)
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


async def _close(thing: Any) -> None:
    close = getattr(thing, "close", None)
    if close is not None:
        result = close()
        if hasattr(result, "__await__"):
            await result


def _quick_retrier() -> Retrier:
    # A doctor answers in seconds: a couple of quick retries, not the run's patient policy.
    return Retrier(RetryPolicy(max_attempts=3, base_delay_s=0.2, max_delay_s=2.0, max_retry_after_s=5.0))


# -- configuration --------------------------------------------------------------------------


def check_configuration(diagnosis: Diagnosis, config_file: Path | None = None, **overrides: Any) -> Settings | None:
    """Load the settings (recording the check); None when they do not load."""
    try:
        settings = load_settings(config_file, **overrides)
    except ConfigError as exc:
        diagnosis.add("configuration", "fail", str(exc).replace("\n", " "), "set or correct the settings named")
        return None
    register_settings_secrets(settings)
    diagnosis.add(
        "configuration", "ok",
        f"loaded (graph.auth={settings.graph.auth}, index.backend={settings.index.backend}, "
        f"state.backend={settings.state.backend}, embedding.provider={settings.embedding.provider})",
    )
    try:
        check_otel(settings)
    except ConfigError as exc:
        diagnosis.add("telemetry", "fail", str(exc))
    return settings


# -- Microsoft Graph and SharePoint REST ----------------------------------------------------


async def _token(credential: Any, scope: str) -> None:
    result = credential.get_token(scope)
    if hasattr(result, "__await__"):
        await result


async def _first(items: AsyncIterator[Any]) -> Any:
    try:
        async for item in items:
            return item
        return None
    finally:
        await items.aclose()  # type: ignore[attr-defined]


class _GraphProbe:
    """The Graph and SharePoint REST checks, each on what the previous one found."""

    def __init__(self, settings: Settings, diagnosis: Diagnosis, graph: Any, rest: Any, user: str | None) -> None:
        self.settings = settings
        self.diagnosis = diagnosis
        self.graph = graph
        self.rest = rest
        self.user = user

    def _failed(self, name: str, exc: BaseException, permission_fix: str, *, not_found: str | None = None) -> None:
        status = _status(exc)
        fix: str | None = None
        if status == 401:
            fix = SIGN_IN_FIX.get(self.settings.graph.auth)
        elif status == 403 or isinstance(exc, AuthError):
            fix = permission_fix
        elif status == 404:
            fix = not_found
        elif isinstance(exc, SourceUnavailable):
            fix = f"check that {self.settings.graph.base_url} is reachable from here"
        # The transport's generic advice gives way to the specific grant named here.
        detail = _describe(exc).replace("; grant the app the permission named there", "")
        self.diagnosis.add(name, "fail", detail, fix)

    async def site(self) -> Any | None:
        """The first site spindex would sync, or None (check recorded)."""
        name = "graph sites (Sites.Read.All)"
        fix = grant("Sites.Read.All", alternative=" (or Sites.Selected with a grant on each site)")
        configured = self.settings.graph.sites
        found = None
        for entry in configured or [None]:
            try:
                site = await self.graph.site(entry) if entry else await _first(self.graph.all_sites())
            except SpindexError as exc:
                self._failed(name, exc, fix, not_found=f"graph.sites entry {entry!r}: use a Graph site id or hostname:/sites/path")
                if _status(exc) == 404:
                    continue
                return None
            if site is None:
                self.diagnosis.add(name, "warn", "no site is visible to the app", fix)
                return None
            found = found or site
            self.diagnosis.add(name, "ok", f"{'site' if entry else 'first site'} {site.display_name or site.name or site.id!s} readable")
        return found

    async def drive_item(self, site: Any) -> tuple[Any, Any] | None:
        """(library, a file in it) from the site's first library's delta, or None (checks recorded)."""
        name = "graph library delta (Files.Read.All or Sites.Read.All)"
        fix = grant("Files.Read.All", alternative=" (or Sites.Read.All)")
        try:
            drives = await self.graph.drives(site.id, include_system=False)
            if not drives:
                self.diagnosis.add(name, "skip", f"site {site.display_name or site.id} has no document library to probe")
                return None
            drive = drives[0]
            page = await self.graph.delta_page(drive.id, None, top=50, sharing_changes=False)
            file_item = next((i for i in page.items if i.is_file), None)
            for _ in range(PROBE_DELTA_PAGES - 1):
                if file_item is not None or not page.next_link:
                    break
                page = await self.graph.delta_page(drive.id, page.next_link, top=50, sharing_changes=False)
                file_item = next((i for i in page.items if i.is_file), None)
        except SpindexError as exc:
            self._failed(name, exc, fix)
            return None
        self.diagnosis.add(name, "ok", f"delta of library {drive.name!s} readable")
        return drive, file_item

    async def item_permissions(self, drive: Any, item: Any | None) -> list[Any]:
        """The item's permissions ([] when there is no item or they cannot be read; check recorded)."""
        name = "graph item permissions (Files.Read.All or Sites.Read.All)"
        if item is None:
            self.diagnosis.add(name, "skip", f"no file in the first pages of library {drive.name!s} to probe")
            return []
        try:
            permissions = await self.graph.permissions(drive.id, item.id)
        except PermissionsUnreadable as exc:
            self._failed(name, exc, grant("Files.Read.All", alternative=" (or Sites.Read.All)"))
            return []
        self.diagnosis.add(name, "ok", f"permissions of {item.name!s} readable ({len(permissions)} entries)")
        return permissions

    async def directory(self, permissions: list[Any]) -> None:
        """users/{id} (User.Read.All) and users/{id}/transitiveMemberOf (GroupMember.Read.All)."""
        probe = self.user or _user_in(permissions) or PROBE_USER_ID
        user_id = probe
        name = "graph users (User.Read.All)"
        try:
            entry = await self.graph.user(probe)
            user_id = entry.id or probe
            self.diagnosis.add(name, "ok", f"user {probe} readable")
        except ItemUnavailable:
            if self.user:
                self.diagnosis.add(name, "warn", f"user {probe} not found (the permission is granted)")
            else:
                self.diagnosis.add(name, "ok", "directory readable (a probe id was looked up and not found)")
        except SpindexError as exc:
            self._failed(name, exc, grant("User.Read.All"))
        name = "graph group membership (GroupMember.Read.All)"
        try:
            groups = await self.graph.transitive_group_ids(user_id)
            self.diagnosis.add(name, "ok", f"transitive groups of {user_id} readable ({len(groups)})")
        except ItemUnavailable:
            self.diagnosis.add(name, "ok", "group membership readable (a probe id was looked up and not found)")
        except SpindexError as exc:
            self._failed(name, exc, grant("GroupMember.Read.All"))

    async def site_groups(self, site: Any) -> None:
        """SharePoint REST site-group members: SharePoint's Sites.Read.All, certificate for app-only."""
        name = "sharepoint rest site groups (SharePoint Sites.Read.All)"
        try:
            await self.rest.site_group_users(site.web_url, PROBE_SITE_GROUP)
        except AuthError as exc:
            self.diagnosis.add(name, "fail", _describe(exc), SHAREPOINT_CERTIFICATE)
            return
        except SourceUnavailable as exc:
            self.diagnosis.add(name, "fail", _describe(exc), "check that the SharePoint host of the site is reachable from here")
            return
        except PermissionsUnreadable as exc:
            status = _status(exc)
            if status != 404:  # no such group, but SharePoint let the app ask: access works
                fix = SHAREPOINT_GRANT if status == 403 else None
                self.diagnosis.add(name, "fail", _describe(exc), fix)
                return
        self.diagnosis.add(name, "ok", f"site groups of {site.web_url} readable")


def _user_in(permissions: list[Any]) -> str | None:
    """The object id of the first user granted in `permissions`, or None."""
    for permission in permissions:
        identities = [getattr(permission, "granted_to_v2", None), *(getattr(permission, "granted_to_identities_v2", None) or [])]
        for identity in identities:
            user = getattr(identity, "user", None) if identity is not None else None
            if user is not None and getattr(user, "id", None):
                return str(user.id)
    return None


async def check_graph(settings: Settings, diagnosis: Diagnosis, *, user: str | None = None) -> None:
    """Sign in to Graph, then probe each permission spindex needs (checks recorded)."""
    from ingest.graph.auth import build_graph_credential
    from ingest.graph.client import GraphClient
    from ingest.graph.sharepoint_rest import SharePointRest

    try:
        credential: Any = build_graph_credential(settings.graph)
    except ConfigError as exc:
        diagnosis.add("graph sign-in", "fail", str(exc), "set the setting named")
        return
    try:
        await _token(credential, GRAPH_SCOPE)
    except Exception as exc:  # azure-identity raises its own ClientAuthenticationError family
        diagnosis.add("graph sign-in", "fail", f"no token for Microsoft Graph ({_describe(exc)})", SIGN_IN_FIX.get(settings.graph.auth))
        await _close(credential)
        return
    diagnosis.add("graph sign-in", "ok", f"token issued ({settings.graph.auth})")
    graph = GraphClient(settings.graph, credential, retrier=_quick_retrier())
    rest = SharePointRest(credential, base_url_override=settings.graph.sharepoint_url, retrier=graph.retrier)
    probe = _GraphProbe(settings, diagnosis, graph, rest, user)
    try:
        site = await probe.site()
        permissions: list[Any] = []
        if site is None:
            diagnosis.add("graph library delta", "skip", "needs a readable site")
        else:
            found = await probe.drive_item(site)
            if found is not None:
                permissions = await probe.item_permissions(*found)
        await probe.directory(permissions)
        if site is not None:
            await probe.site_groups(site)
        else:
            diagnosis.add("sharepoint rest site groups", "skip", "needs a readable site")
    finally:
        await rest.close()
        await graph.close()


# -- index, state, embedder -----------------------------------------------------------------


async def check_index(settings: Settings, diagnosis: Diagnosis) -> None:
    """The index service answers, and says what the alias points at."""
    from ingest.components import build_catalog

    name = f"index ({settings.index.backend})"
    fix = (
        "check index.endpoint and index.api_key, or give the identity the roles Search Service Contributor "
        "and Search Index Data Contributor" if settings.index.backend == "azure" else None
    )
    try:
        catalog = build_catalog(settings)
    except ConfigError as exc:
        diagnosis.add(name, "fail", str(exc), "set index.backend and its settings")
        return
    try:
        target = await catalog.get_alias(settings.index.alias)
    except Exception as exc:  # any failure here is the finding
        diagnosis.add(name, "fail", _describe(exc), fix)
        return
    finally:
        await _close(catalog)
    if target is None:
        diagnosis.add(name, "ok", f"alias {settings.index.alias!r} not created yet (the first run creates {settings.index.alias}-v1)")
    else:
        diagnosis.add(name, "ok", f"alias {settings.index.alias!r} -> {target}")


async def check_state(settings: Settings, diagnosis: Diagnosis) -> None:
    """A probe cursor is written, read back and deleted, under a probe lease."""
    from ingest.components import build_state
    from ingest.state.base import DriveCursor, LeaseHeld

    name = f"state ({settings.state.backend})"
    fix = (
        "check state.blob_account_url and the identity's role Storage Blob Data Contributor, or state.blob_connection_string"
        if settings.state.backend == "blob" else f"check that {settings.state_dir} is writable"
    )
    try:
        state = build_state(settings)
    except (ConfigError, OSError) as exc:
        diagnosis.add(name, "fail", _describe(exc), fix)
        return
    try:
        async with state.lease(PROBE_STATE_KEY):
            stored = await state.load(PROBE_STATE_KEY)
            probe = DriveCursor(drive_id=PROBE_STATE_KEY, link="spindex-doctor")
            await state.save(PROBE_STATE_KEY, probe, if_match=stored[1] if stored else None)
            back = await state.load(PROBE_STATE_KEY)
            await state.delete(PROBE_STATE_KEY)
        if back is None or back[0].link != probe.link:
            diagnosis.add(name, "fail", "a probe cursor written was not read back", fix)
        else:
            diagnosis.add(name, "ok", "probe cursor written, read and deleted; lease taken and released")
    except LeaseHeld:
        diagnosis.add(name, "warn", "another doctor holds the probe lease; run again")
    except Exception as exc:  # any failure here is the finding
        diagnosis.add(name, "fail", _describe(exc), fix)
    finally:
        await _close(state)


async def check_embedder(settings: Settings, diagnosis: Diagnosis, *, offline: bool = False) -> None:
    """One tiny embedding of the configured size (not sent with `offline`)."""
    from ingest.components import build_embedder

    config = settings.embedding
    name = f"embedder ({config.provider})"
    if config.provider == "offline":
        diagnosis.add(name, "warn", "offline embedder: deterministic and lexical, not semantic (for demos and tests)")
        return
    if offline:
        diagnosis.add(name, "skip", "not called (--offline)")
        return
    try:
        embedder = build_embedder(settings)
    except ConfigError as exc:
        diagnosis.add(name, "fail", str(exc), "set the setting named")
        return
    try:
        vectors = await embedder.embed(["spindex doctor"])
    except AuthError as exc:
        diagnosis.add(name, "fail", _describe(exc), "check embedding.api_key, or give the identity the role Cognitive Services OpenAI User")
        return
    except SystemicError as exc:
        diagnosis.add(name, "fail", _describe(exc), "check embedding.endpoint (and embedding.deployment) and that it is reachable")
        return
    except Exception as exc:  # any failure here is the finding
        diagnosis.add(name, "fail", _describe(exc), "check embedding.model, embedding.dimensions and the deployment")
        return
    finally:
        await embedder.close()
    size = len(vectors[0]) if vectors else 0
    if size != config.dimensions:
        diagnosis.add(name, "fail", f"vectors of {size} dimensions, configured {config.dimensions}", "set embedding.dimensions to the model's size")
    else:
        diagnosis.add(name, "ok", f"one embedding of {size} dimensions")


async def diagnose(
    config_file: Path | None = None, *, offline: bool = False, user: str | None = None, **overrides: Any
) -> Diagnosis:
    """Run every check; the configuration is loaded from `config_file`, env and `overrides`."""
    diagnosis = Diagnosis()
    settings = check_configuration(diagnosis, config_file, **overrides)
    if settings is None:
        return diagnosis
    steps: list[Callable[[], Awaitable[None]]] = [
        lambda: check_graph(settings, diagnosis, user=user),
        lambda: check_index(settings, diagnosis),
        lambda: check_state(settings, diagnosis),
        lambda: check_embedder(settings, diagnosis, offline=offline),
    ]
    for step in steps:
        await step()
    return diagnosis

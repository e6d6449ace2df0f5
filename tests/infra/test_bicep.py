"""The Azure deployment in infra/bicep is well-formed and deploys what spindex needs to run.

The Bicep CLI cannot run here, so these tests stand in for `az bicep build` as far as a parser can:

- every .bicep file parses with no ERROR or MISSING node (reported with file, line and column);
  every parameter and output has a @description; only dated, non-preview API versions are used;
- names resolve: each identifier is a declared symbol, each function a Bicep built-in, each
  module path a file, each module argument a parameter of that module (and no required one is
  left out), each `module.outputs.x` an output of that module; no parameter or variable is unused;
- main.bicep deploys the user-assigned identity, Azure AI Search with the semantic ranker and
  Entra ID + key auth, a Storage account (no public blob access, TLS 1.2) with the state and
  staging containers, Log Analytics wired to a Container Apps environment, a Key Vault with RBAC,
  the conditional Azure OpenAI account and embedding deployment, the five role assignments on
  the right resources, and three scheduled jobs running `python -m jobs delta|acl|full` as the
  identity with the Graph certificate mounted from Key Vault;
- the jobs' environment variables are real spindex settings and load as a valid `Settings`
  for every `graphAuth` mode the template allows;
- main.parameters.json names only declared parameters, covers every one without a default,
  and gives values of the declared type; docs/deploy.md names every parameter.
"""

from __future__ import annotations

import json
import os
import re
import typing
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("tree_sitter_bicep")

from ingest.config import GraphSettings, Settings, StateSettings, reference  # noqa: E402
from tests.infra.bicep_ast import (  # noqa: E402
    BUILTIN_FUNCTIONS,
    BicepFile,
    Declaration,
    Expr,
    Ternary,
    branches,
    dig,
)

REPO = Path(__file__).resolve().parents[2]
BICEP_DIR = REPO / "infra" / "bicep"
MAIN = BICEP_DIR / "main.bicep"
PARAMETERS = BICEP_DIR / "main.parameters.json"
DEPLOY_DOC = REPO / "docs" / "deploy.md"
BICEP_PATHS = sorted(BICEP_DIR.rglob("*.bicep"))

ROLE_SCOPES = {
    "8ebe5a00-799e-43f5-93ac-243d3dce84a7": "Microsoft.Search/searchServices",  # Search Index Data Contributor
    "7ca78c08-252a-4471-8644-bb5ff32d4ba0": "Microsoft.Search/searchServices",  # Search Service Contributor
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Microsoft.Storage/storageAccounts",  # Storage Blob Data Contributor
    "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd": "Microsoft.CognitiveServices/accounts",  # Cognitive Services OpenAI User
    "4633458b-17de-408a-b874-0445c86b69e6": "Microsoft.KeyVault/vaults",  # Key Vault Secrets User
}
REQUIRED_JOB_ENV = {
    "SPINDEX_GRAPH__AUTH",
    "SPINDEX_GRAPH__TENANT_ID",
    "SPINDEX_GRAPH__CLIENT_ID",
    "SPINDEX_INDEX__BACKEND",
    "SPINDEX_INDEX__ENDPOINT",
    "SPINDEX_STATE__BACKEND",
    "SPINDEX_STATE__BLOB_ACCOUNT_URL",
    "SPINDEX_EMBEDDING__PROVIDER",
    "SPINDEX_EMBEDDING__ENDPOINT",
    "SPINDEX_EMBEDDING__DEPLOYMENT",
    "AZURE_CLIENT_ID",
}
GUID = "00000000-0000-0000-0000-000000000000"
# Stand-ins for values only known at deployment time, used to load the jobs' environment as Settings.
DEPLOY_TIME_VALUES = {
    "SPINDEX_GRAPH__TENANT_ID": GUID,
    "SPINDEX_GRAPH__CLIENT_ID": GUID,
    "AZURE_CLIENT_ID": GUID,
    "SPINDEX_INDEX__ENDPOINT": "https://srch-spindex-abc.search.windows.net",
    "SPINDEX_STATE__BLOB_ACCOUNT_URL": "https://stspindexabc.blob.core.windows.net/",
    "SPINDEX_STATE__BLOB_CONTAINER": "spindex-state",
    "SPINDEX_EMBEDDING__ENDPOINT": "https://oai-spindex-abc.openai.azure.com/",
    "SPINDEX_GRAPH__CERTIFICATE_PATH": "/mnt/secrets/graph-certificate.pem",
    "SPINDEX_GRAPH__SITES": '["contoso.sharepoint.com:/sites/hr"]',
    "SPINDEX_EMBEDDING__DIMENSIONS": "1536",
}


@pytest.fixture(scope="module")
def files() -> dict[Path, BicepFile]:
    return {path: BicepFile(path) for path in BICEP_PATHS}


@pytest.fixture(scope="module")
def main(files: dict[Path, BicepFile]) -> BicepFile:
    return files[MAIN]


def module_file(files: dict[Path, BicepFile], owner: BicepFile, module: Declaration) -> BicepFile:
    return files[(owner.path.parent / module.type).resolve()]


def modules_of(main: BicepFile, path: str) -> list[Declaration]:
    return [m for m in main.modules.values() if m.type == path]


def only(items: list[Declaration], what: str) -> Declaration:
    assert len(items) == 1, f"expected exactly one {what}, found {[d.name for d in items]}"
    return items[0]


def param_default(file: BicepFile, value: Any) -> Any:
    """The literal a parameter or variable reference stands for (param default or var value)."""
    if isinstance(value, Expr):
        decl = file.params.get(value.text) or file.of_kind("var").get(value.text)
        if decl is not None and not isinstance(decl.value, (Expr, Ternary)):
            return decl.value
    return value


def collect(value: Any, predicate) -> list[Any]:
    """Every dict/list/Ternary member of `value` (recursively) for which predicate holds."""
    found = [value] if predicate(value) else []
    if isinstance(value, dict):
        for item in value.values():
            found += collect(item, predicate)
    elif isinstance(value, list):
        for item in value:
            found += collect(item, predicate)
    elif isinstance(value, Ternary):
        found += collect(value.consequence, predicate) + collect(value.alternative, predicate)
    return found


# ---- syntax and names ----


def test_there_is_a_main_template_and_modules() -> None:
    assert MAIN in BICEP_PATHS
    assert len([p for p in BICEP_PATHS if p.parent.name == "modules"]) >= 5


@pytest.mark.parametrize("path", BICEP_PATHS, ids=lambda p: str(p.relative_to(BICEP_DIR)))
def test_every_bicep_file_parses_without_syntax_errors(path: Path) -> None:
    problems = BicepFile(path).syntax_problems()
    assert not problems, "syntax errors:\n" + "\n".join(str(p) for p in problems)


@pytest.mark.parametrize("path", BICEP_PATHS, ids=lambda p: str(p.relative_to(BICEP_DIR)))
def test_every_module_says_what_it_is_for(path: Path) -> None:
    first_line = path.read_text().splitlines()[0]
    assert first_line.startswith("// ") and len(first_line) > 20, f"{path.name} should open with a one-line comment"


def test_every_parameter_and_output_has_a_description(files: dict[Path, BicepFile]) -> None:
    missing = [
        f"{f.path.relative_to(BICEP_DIR)}:{d.line} {d.kind} {d.name}"
        for f in files.values()
        for d in f.declarations
        if d.kind in ("param", "output") and not d.description
    ]
    assert not missing, "no @description: " + ", ".join(missing)


def test_api_versions_are_dated_and_stable(files: dict[Path, BicepFile]) -> None:
    pattern = re.compile(r"^[A-Za-z]+\.[A-Za-z]+(/[A-Za-z]+)+@\d{4}-\d{2}-\d{2}$")
    bad = [
        f"{f.path.name}:{d.line} {d.type}"
        for f in files.values()
        for d in f.of_kind("resource").values()
        if not (isinstance(d.type, str) and pattern.match(d.type))
    ]
    assert not bad, "resource types must be Namespace/type@yyyy-mm-dd (no -preview): " + ", ".join(bad)


def test_every_identifier_is_declared(files: dict[Path, BicepFile]) -> None:
    unknown = []
    for f in files.values():
        symbols = {d.name for d in f.declarations if d.kind != "output"} | f.loop_variables()
        unknown += [f"{f.path.name}:{line} {name}" for name, line in f.identifier_uses() if name not in symbols]
    assert not unknown, "undeclared identifiers: " + ", ".join(unknown)


def test_every_function_is_a_bicep_builtin(files: dict[Path, BicepFile]) -> None:
    unknown = [
        f"{f.path.name}:{line} {name}()"
        for f in files.values()
        for name, line in f.function_calls()
        if name not in BUILTIN_FUNCTIONS
    ]
    assert not unknown, "unknown functions: " + ", ".join(unknown)


def test_no_parameter_or_variable_is_unused(files: dict[Path, BicepFile]) -> None:
    unused = []
    for f in files.values():
        used = {name for name, _ in f.identifier_uses()}
        unused += [f"{f.path.name}:{d.line} {d.kind} {d.name}" for d in f.declarations if d.kind in ("param", "var") and d.name not in used]
    assert not unused, "unused: " + ", ".join(unused)


def test_modules_exist_and_get_exactly_their_parameters(files: dict[Path, BicepFile]) -> None:
    problems = []
    for f in files.values():
        for module in f.modules.values():
            target = (f.path.parent / module.type).resolve()
            if target not in files:
                problems.append(f"{f.path.name}:{module.line} module {module.name}: no file {module.type}")
                continue
            declared = files[target].params
            given = module.value.get("params", {})
            for name in sorted(set(given) - set(declared)):
                problems.append(f"{f.path.name}:{module.line} {module.name} passes unknown parameter {name}")
            for name, param in declared.items():
                if not param.has_default and name not in given:
                    problems.append(f"{f.path.name}:{module.line} {module.name} leaves out required parameter {name}")
                allowed = param.decorators.get("allowed")
                value = param_default(f, given.get(name))
                if allowed and name in given and not isinstance(value, (Expr, Ternary)) and value not in allowed[0]:
                    problems.append(f"{f.path.name}:{module.line} {module.name}.{name} = {value!r} is not in {allowed[0]}")
    assert not problems, "\n".join(problems)


def test_module_outputs_used_are_declared(files: dict[Path, BicepFile]) -> None:
    problems = []
    for f in files.values():
        modules = f.modules
        for root, properties, line in f.member_chains():
            if root in modules and properties[:1] == ["outputs"] and len(properties) > 1:
                target = module_file(files, f, modules[root])
                if properties[1] not in target.outputs:
                    problems.append(f"{f.path.name}:{line} {root}.outputs.{properties[1]} is not an output of {modules[root].type}")
    assert not problems, "\n".join(problems)


def test_main_targets_a_resource_group(main: BicepFile) -> None:
    assert main.target_scope == "resourceGroup"


# ---- what gets deployed ----


def test_user_assigned_identity_is_deployed(files: dict[Path, BicepFile], main: BicepFile) -> None:
    module = only(modules_of(main, "modules/identity.bicep"), "identity module")
    identity = module_file(files, main, module)
    only(identity.resources_of_type("Microsoft.ManagedIdentity/userAssignedIdentities"), "user-assigned identity")
    assert module.condition is None


def test_search_service_has_semantic_ranker_and_accepts_entra_id_and_keys(files: dict[Path, BicepFile], main: BicepFile) -> None:
    module = only(modules_of(main, "modules/search.bicep"), "search module")
    search_file = module_file(files, main, module)
    service = only(search_file.resources_of_type("Microsoft.Search/searchServices"), "search service")
    properties = service.value["properties"]
    assert dig(properties, "authOptions", "aadOrApiKey") is not None
    assert properties.get("disableLocalAuth") is False
    semantic = search_file.params[properties["semanticSearch"].text]
    assert set(semantic.decorators["allowed"][0]) == {"free", "standard"}, "the semantic ranker is always on"
    main_semantic = main.params[module.value["params"]["semanticSearch"].text]
    assert set(main_semantic.decorators["allowed"][0]) == {"free", "standard"}
    main_sku = main.params[module.value["params"]["sku"].text]
    assert main_sku.value == "basic" and "free" not in main_sku.decorators["allowed"][0]
    assert service.value["sku"]["name"] == Expr("sku")


def test_storage_account_is_private_with_tls12_and_both_containers(files: dict[Path, BicepFile], main: BicepFile) -> None:
    module = only(modules_of(main, "modules/storage.bicep"), "storage module")
    storage = module_file(files, main, module)
    account = only(storage.resources_of_type("Microsoft.Storage/storageAccounts"), "storage account")
    properties = account.value["properties"]
    assert properties["allowBlobPublicAccess"] is False
    assert properties["minimumTlsVersion"] == "TLS1_2"
    assert properties["supportsHttpsTrafficOnly"] is True
    containers = storage.resources_of_type("Microsoft.Storage/storageAccounts/blobServices/containers")
    names = set()
    for container in containers:
        assert container.value["properties"]["publicAccess"] == "None"
        param_name = container.value["name"].text
        passed = module.value["params"].get(param_name, storage.params[param_name].value)
        names.add(param_default(main, passed))
    assert names == {"spindex-state", "spindex-staging"}
    assert StateSettings.model_fields["blob_container"].default == "spindex-state"


def test_log_analytics_feeds_the_container_apps_environment(files: dict[Path, BicepFile], main: BicepFile) -> None:
    monitoring = only(modules_of(main, "modules/monitoring.bicep"), "monitoring module")
    only(module_file(files, main, monitoring).resources_of_type("Microsoft.OperationalInsights/workspaces"), "workspace")
    env_module = only(modules_of(main, "modules/environment.bicep"), "environment module")
    env_file = module_file(files, main, env_module)
    environment = only(env_file.resources_of_type("Microsoft.App/managedEnvironments"), "managed environment")
    logs = environment.value["properties"]["appLogsConfiguration"]
    assert logs["destination"] == "log-analytics"
    assert "workspace" in logs["logAnalyticsConfiguration"]["customerId"].text
    assert env_module.value["params"]["logAnalyticsWorkspaceName"] == Expr(f"{monitoring.name}.outputs.name")


def test_key_vault_uses_rbac_and_holds_the_certificate_the_jobs_mount(files: dict[Path, BicepFile], main: BicepFile) -> None:
    module = only(modules_of(main, "modules/keyvault.bicep"), "key vault module")
    vault = only(module_file(files, main, module).resources_of_type("Microsoft.KeyVault/vaults"), "key vault")
    assert vault.value["properties"]["enableRbacAuthorization"] is True
    secret_url = main.of_kind("var")["certificateSecretUrl"].value
    assert isinstance(secret_url, Ternary) and secret_url.condition == "graphAuth == 'certificate'"
    assert secret_url.consequence == Expr("'${keyVault.outputs.vaultUri}secrets/${graphCertificateName}'")
    assert main.params["graphCertificateName"].has_default


def test_role_assignments_grant_the_five_roles_on_the_right_resources(files: dict[Path, BicepFile], main: BicepFile) -> None:
    granted: dict[str, set[str]] = {}
    for f in files.values():
        variables = f.of_kind("var")
        resources = f.of_kind("resource")
        for assignment in f.resources_of_type("Microsoft.Authorization/roleAssignments"):
            body = assignment.value
            assert isinstance(body["name"], Expr) and body["name"].text.startswith("guid("), f"{f.path.name}:{assignment.line}"
            role = re.search(r"'Microsoft\.Authorization/roleDefinitions',\s*(\w+)\)", body["properties"]["roleDefinitionId"].text)
            assert role, f"{f.path.name}:{assignment.line}: roleDefinitionId should name a role variable"
            guid = variables[role.group(1)].value
            scope = resources[body["scope"].text]
            granted.setdefault(guid, set()).add(scope.type.split("@")[0])
            if body["properties"]["principalId"] == Expr("principalId"):
                assert body["properties"]["principalType"] == "ServicePrincipal"
    for guid, scope_type in ROLE_SCOPES.items():
        assert granted.get(guid) == {scope_type}, f"role {guid} should be granted on {scope_type}, got {granted.get(guid)}"
    for name in ("search", "storage", "keyVault", "openAI", "existingOpenAIAccess"):
        assert main.modules[name].value["params"]["principalId"] == Expr("identity.outputs.principalId"), name


def test_azure_openai_is_optional_with_an_embedding_deployment(files: dict[Path, BicepFile], main: BicepFile) -> None:
    module = only(modules_of(main, "modules/openai.bicep"), "openai module")
    assert module.condition == "(deployOpenAI)"
    assert main.params["deployOpenAI"].type == "bool"
    openai = module_file(files, main, module)
    account = only(openai.resources_of_type("Microsoft.CognitiveServices/accounts"), "openai account")
    assert account.value["kind"] == "OpenAI"
    assert "customSubDomainName" in account.value["properties"]
    deployment = only(openai.resources_of_type("Microsoft.CognitiveServices/accounts/deployments"), "embedding deployment")
    assert deployment.value["parent"] == Expr(account.name)
    assert deployment.value["properties"]["model"]["name"] == Expr("model")
    assert param_default(main, module.value["params"]["model"]) == "text-embedding-3-small"
    endpoint = main.of_kind("var")["openAIEndpoint"].value
    assert endpoint == Ternary("deployOpenAI", Expr("openAI.outputs.endpoint"), Expr("existingOpenAIEndpoint"))
    access = only(modules_of(main, "modules/openai-access.bicep"), "access to an existing account")
    assert "!deployOpenAI" in (access.condition or "")


def test_three_scheduled_jobs_run_delta_acl_and_full(files: dict[Path, BicepFile], main: BicepFile) -> None:
    calls = modules_of(main, "modules/job.bicep")
    modes = {call.value["params"]["mode"]: call for call in calls}
    assert sorted(modes) == ["acl", "delta", "full"] and len(calls) == 3
    schedules = {mode: param_default(main, call.value["params"]["cronExpression"]) for mode, call in modes.items()}
    assert schedules["delta"] == "*/15 * * * *"
    assert re.fullmatch(r"\d{1,2} \* \* \* \*", schedules["acl"]), "the ACL refresh runs hourly"
    assert re.fullmatch(r"\d{1,2} \d{1,2} \* \* \*", schedules["full"]), "the full run is nightly"
    names = {param_default(main, call.value["params"]["name"]) for call in calls}
    assert len(names) == 3
    for mode, call in modes.items():
        params = call.value["params"]
        assert params["identityId"] == Expr("identity.outputs.id"), mode
        assert params["image"] == Expr("containerImage"), mode
        assert params["env"] == Expr("jobEnv"), mode
        assert params["environmentId"] == Expr("containerEnvironment.outputs.id"), mode
        assert params["certificateSecretUrl"] == Expr("certificateSecretUrl"), mode
        assert params["certificateMountPath"] == Expr("certificateMountPath"), mode
        assert params["certificateFileName"] == Expr("certificateFileName"), mode
        for timing in ("replicaTimeout", "replicaRetryLimit"):
            assert isinstance(params[timing], Expr) and params[timing].text in main.params, (mode, timing)
    assert "containerImage" in main.params and not main.params["containerImage"].has_default


@pytest.mark.parametrize(
    "mode",
    [
        "delta",
        "acl",
        "full",
    ],
)
def test_every_scheduled_mode_is_a_python_m_jobs_command(main: BicepFile, mode: str) -> None:
    import typer

    from jobs.cli import run_app

    assert mode in {call.value["params"]["mode"] for call in modules_of(main, "modules/job.bicep")}
    assert mode in typer.main.get_command(run_app).commands  # type: ignore[attr-defined]


def test_the_job_template_is_a_scheduled_job_running_python_m_jobs(files: dict[Path, BicepFile]) -> None:
    job_file = files[BICEP_DIR / "modules" / "job.bicep"]
    job = only(job_file.resources_of_type("Microsoft.App/jobs"), "container apps job")
    assert job.value["identity"]["type"] == "UserAssigned"
    assert list(job.value["identity"]["userAssignedIdentities"]) == ["'${identityId}'"]
    configuration = job.value["properties"]["configuration"]
    assert configuration["triggerType"] == "Schedule"
    trigger = configuration["scheduleTriggerConfig"]
    assert trigger["cronExpression"] == Expr("cronExpression") and trigger["parallelism"] == 1
    assert configuration["replicaTimeout"] == Expr("replicaTimeout")
    assert configuration["replicaRetryLimit"] == Expr("replicaRetryLimit")
    secrets = [s for branch in branches(configuration["secrets"]) for s in branch]
    assert {"keyVaultUrl": Expr("certificateSecretUrl"), "identity": Expr("identityId")}.items() <= secrets[0].items()
    (container,) = job.value["properties"]["template"]["containers"]
    assert container["command"] == ["python", "-m", "jobs"]
    assert container["args"] == [Expr("mode")]
    assert job_file.params["mode"].decorators["allowed"][0] == ["delta", "acl", "full"]
    assert container["image"] == Expr("image") and container["env"] == Expr("env")
    mounts = [m for branch in branches(container["volumeMounts"]) for m in branch]
    volumes = [v for branch in branches(job.value["properties"]["template"]["volumes"]) for v in branch]
    assert mounts[0]["mountPath"] == Expr("certificateMountPath")
    assert volumes[0]["storageType"] == "Secret" and volumes[0]["name"] == mounts[0]["volumeName"]
    assert volumes[0]["secrets"][0]["secretRef"] == secrets[0]["name"]
    assert volumes[0]["secrets"][0]["path"] == Expr("certificateFileName")


def test_outputs_give_endpoints_identity_and_job_names(main: BicepFile) -> None:
    outputs = main.outputs
    assert outputs["searchEndpoint"].value == Expr("search.outputs.endpoint")
    assert outputs["storageBlobUrl"].value == Expr("storage.outputs.blobEndpoint")
    assert outputs["identityClientId"].value == Expr("identity.outputs.clientId")
    assert outputs["jobNames"].type == "array" and len(outputs["jobNames"].value) == 3


# ---- the jobs' environment is a spindex configuration ----


def is_env_entry(value: Any) -> bool:
    """`{ name: 'SPINDEX_...', value: ... }`, an entry of a container's env array."""
    return isinstance(value, dict) and set(value) == {"name", "value"} and isinstance(value["name"], str)


def job_env_entries(main: BicepFile) -> list[dict[str, Any]]:
    return [entry for var in main.of_kind("var").values() for entry in collect(var.value, is_env_entry)]


def test_job_environment_variables_are_spindex_settings(main: BicepFile) -> None:
    entries = job_env_entries(main)
    names = [e["name"] for e in entries]
    known = {env for env, _, _ in reference()} | {"AZURE_CLIENT_ID"}
    assert len(names) == len(set(names)), "an environment variable is set twice"
    assert set(names) <= known, f"not spindex settings: {sorted(set(names) - known)}"
    assert REQUIRED_JOB_ENV <= set(names), f"missing: {sorted(REQUIRED_JOB_ENV - set(names))}"
    by_name = {e["name"]: e["value"] for e in entries}
    assert by_name["SPINDEX_INDEX__BACKEND"] == "azure"
    assert by_name["SPINDEX_STATE__BACKEND"] == "blob"
    assert by_name["SPINDEX_EMBEDDING__PROVIDER"] == "azure_openai"
    assert by_name["AZURE_CLIENT_ID"] == Expr("identity.outputs.clientId")
    assert by_name["SPINDEX_GRAPH__CERTIFICATE_PATH"] == Expr("'${certificateMountPath}/${certificateFileName}'")
    job_env = main.of_kind("var")["jobEnv"].value.text
    holders = [v.name for v in main.of_kind("var").values() if collect(v.value, is_env_entry)]
    assert all(name in job_env for name in holders), f"jobEnv should concatenate {holders}"


def test_graph_auth_modes_are_ones_spindex_supports(main: BicepFile) -> None:
    supported = set(typing.get_args(GraphSettings.model_fields["auth"].annotation))
    allowed = set(main.params["graphAuth"].decorators["allowed"][0])
    assert allowed <= supported and "sandbox" not in allowed


def _pick(value: Any, mode: str) -> Any:
    """Resolve a Ternary the way a deployment with graphAuth=mode would (other switches: the richer branch)."""
    if not isinstance(value, Ternary):
        return value
    chosen = re.fullmatch(r"graphAuth == '(\w+)'", value.condition)
    if chosen:
        return _pick(value.consequence if chosen.group(1) == mode else value.alternative, mode)
    def size(branch: Any) -> int:
        return len(branch) if isinstance(branch, list) else 1

    richer = value.consequence if size(value.consequence) >= size(value.alternative) else value.alternative
    return _pick(richer, mode)


@pytest.mark.parametrize("mode", ["certificate", "managed_identity"])
def test_job_environment_loads_as_valid_settings(main: BicepFile, mode: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert mode in main.params["graphAuth"].decorators["allowed"][0]
    env: dict[str, str] = {}
    for var in main.of_kind("var").values():
        value = _pick(var.value, mode)
        for entry in collect(value, is_env_entry):
            resolved = _pick(entry["value"], mode)
            if resolved == Expr("graphAuth"):
                resolved = mode
            resolved = param_default(main, resolved)
            if isinstance(resolved, Expr) or resolved == "":
                resolved = DEPLOY_TIME_VALUES[entry["name"]]
            env[entry["name"]] = str(resolved)
    for name in list(os.environ):
        if name.startswith("SPINDEX_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    settings = Settings(_env_file=None)
    assert settings.graph.auth == mode
    assert settings.index.backend == "azure" and settings.index.endpoint
    assert settings.state.backend == "blob" and settings.state.blob_account_url
    assert settings.embedding.provider == "azure_openai" and settings.embedding.deployment
    assert (settings.graph.certificate_path is not None) == (mode == "certificate")


# ---- parameters file and documentation ----


def _json_type(value: Any) -> str:
    return {bool: "bool", int: "int", str: "string", list: "array", dict: "object"}[type(value)]


def test_parameters_file_names_declared_parameters_and_every_required_one(main: BicepFile) -> None:
    document = json.loads(PARAMETERS.read_text())
    assert document["$schema"].endswith("/deploymentParameters.json#")
    assert document["contentVersion"]
    given = document["parameters"]
    declared = main.params
    assert set(given) <= set(declared), f"not parameters of main.bicep: {sorted(set(given) - set(declared))}"
    required = {name for name, p in declared.items() if not p.has_default}
    assert required <= set(given), f"required parameters missing: {sorted(required - set(given))}"
    for name, entry in given.items():
        assert set(entry) == {"value"}, f"{name}: give a literal value"
        assert _json_type(entry["value"]) == declared[name].type, f"{name} should be a {declared[name].type}"
        allowed = declared[name].decorators.get("allowed")
        if allowed:
            assert entry["value"] in allowed[0], f"{name}: {entry['value']!r} not in {allowed[0]}"


def test_parameters_file_holds_no_secrets() -> None:
    text = PARAMETERS.read_text().lower()
    for word in ("password", "apikey", "api_key", "connectionstring", "accountkey", "begin private key"):
        assert word not in text, word


def _doc_default(param: Declaration) -> str:
    """How docs/deploy.md writes a parameter's default in its tables."""
    if not param.has_default:
        return "**required**"
    value = param.value
    if isinstance(value, Expr):
        return f"`{value.text}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if value == "":
        return "`''`"
    return f"`{json.dumps(value) if isinstance(value, (list, dict)) else value}`"


def test_deploy_doc_describes_every_parameter_with_its_default(main: BicepFile) -> None:
    doc = DEPLOY_DOC.read_text()
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+)` \| (.+?) \| .+ \|$", doc, re.MULTILINE)}
    missing = [name for name in main.params if name not in rows]
    assert not missing, f"docs/deploy.md has no table row for: {missing}"
    wrong = {name: (rows[name], _doc_default(p)) for name, p in main.params.items() if rows[name] != _doc_default(p)}
    assert not wrong, f"defaults in docs/deploy.md differ from main.bicep (doc, template): {wrong}"


def test_deploy_doc_gives_the_command_and_the_permissions() -> None:
    doc = DEPLOY_DOC.read_text()
    assert "az deployment group create -g <rg> -f infra/bicep/main.bicep -p @infra/bicep/main.parameters.json" in doc
    for needed in ("Sites.Read.All", "Sites.Selected", "GroupMember.Read.All", "POST /sites/{id}/permissions", "admin consent", "application/x-pem-file"):
        assert needed in doc, needed


def test_readme_deployment_section_names_every_parameter(main: BicepFile) -> None:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Deploying to Azure"):readme.index("## Configuration reference")]
    missing = [name for name in main.params if f"`{name}`" not in section]
    assert not missing, f"README's deployment section does not name: {missing}"

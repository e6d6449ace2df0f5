"""The Dockerfile builds a small, non-root image that runs `python -m jobs`, with no secrets in it.

No Docker engine runs here, so these tests read the Dockerfile with a small line parser
(continuations, comments, stages) and defend:

- every stage starts from a slim Python 3.11 image, and the image is multi-stage: the runtime
  stage copies a built virtual environment instead of installing anything itself;
- runtime dependencies only: no test extras, pytest or hypothesis are installed in any stage,
  and the dependency list is `[project].dependencies` of pyproject.toml;
- the runtime stage sets WORKDIR and PYTHONUNBUFFERED=1, runs as a numeric non-root USER, and its
  ENTRYPOINT is exactly `python -m jobs` with a CMD that is a real `python -m jobs` command;
- the source keeps its repository layout (ingest/ finds schemas/index.json beside it);
- no ENV or ARG named like a secret carries a value; .dockerignore keeps local configuration,
  keys and the VCS out of the build context without excluding anything the image copies.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pytest
import typer

from jobs.cli import run_app

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
SLIM_PYTHON = re.compile(r"^(docker\.io/(library/)?)?python:3\.11(\.\d+)?-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?$")
SECRET_NAME = re.compile(r"SECRET|KEY|PASSWORD|PASSWD|TOKEN|CREDENTIAL|CONNECTION_STRING", re.IGNORECASE)
TEST_ONLY = re.compile(r"\[[^\]]*test[^\]]*\]|\bpytest\b|\bhypothesis\b|optional-dependencies")


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction, or None for the shell form."""
        try:
            value = json.loads(self.args)
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


@dataclass
class Stage:
    image: str
    alias: str | None
    line: int
    instructions: list[Instruction] = field(default_factory=list)

    def of(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        """Every ENV variable the stage sets, in both `ENV a=b c=d` and legacy `ENV a b` forms."""
        values: dict[str, str] = {}
        for instruction in self.of("ENV"):
            values.update(parse_assignments(instruction.args, legacy=True))
        return values


def parse_assignments(args: str, *, legacy: bool) -> dict[str, str]:
    words = shlex.split(args, posix=True)
    if legacy and words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    pairs = {}
    for word in words:
        name, _, value = word.partition("=")
        pairs[name] = value
    return pairs


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages of a Dockerfile, with line continuations joined and comments dropped."""
    instructions: list[Instruction] = []
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction are dropped by Docker
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer.append(stripped[:-1].strip())
            continue
        buffer.append(stripped)
        line = " ".join(part for part in buffer if part)
        keyword, _, args = line.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
        buffer = []
    assert not buffer, "the Dockerfile ends inside a continued instruction"
    stages: list[Stage] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            words = [w for w in instruction.args.split() if not w.startswith("--")]
            alias = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], alias, instruction.line))
        else:
            assert stages, f"line {instruction.line}: {instruction.keyword} before the first FROM"
            stages[-1].instructions.append(instruction)
    return stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def runtime(stages: list[Stage]) -> Stage:
    return stages[-1]


def test_parser_joins_continuations_and_drops_comments() -> None:
    parsed = parse_dockerfile("# c\nFROM python:3.11-slim AS a\nRUN one \\\n  # inner\n  two\nENV A=1 B=\"x y\"\n")
    assert [(s.image, s.alias) for s in parsed] == [("python:3.11-slim", "a")]
    assert parsed[0].of("RUN")[0].args == "one two"
    assert parsed[0].env() == {"A": "1", "B": "x y"}


def test_every_stage_is_slim_python_311(stages: list[Stage]) -> None:
    aliases = {s.alias for s in stages if s.alias}
    for stage in stages:
        assert SLIM_PYTHON.match(stage.image) or stage.image in aliases, f"line {stage.line}: {stage.image}"
    assert SLIM_PYTHON.match(stages[-1].image)


def test_runtime_stage_copies_what_the_build_stage_built(stages: list[Stage], runtime: Stage) -> None:
    assert len(stages) >= 2, "multi-stage: build the environment in one stage, run from another"
    builders = {s.alias for s in stages[:-1] if s.alias}
    copied_from = {re.search(r"--from=(\S+)", c.args).group(1) for c in runtime.of("COPY") if "--from=" in c.args}
    assert copied_from and copied_from <= builders
    assert not [r for r in runtime.of("RUN") if "pip install" in r.args], "the runtime stage installs nothing itself"


def test_no_test_dependencies_are_installed(stages: list[Stage]) -> None:
    for stage in stages:
        for run in stage.of("RUN"):
            assert not TEST_ONLY.search(run.args), f"line {run.line}: {run.args}"
    build_runs = " ".join(r.args for s in stages[:-1] for r in s.of("RUN"))
    assert "['project']['dependencies']" in build_runs, "install [project].dependencies of pyproject.toml"


def test_runtime_runs_as_a_numeric_non_root_user(runtime: Stage) -> None:
    users = runtime.of("USER")
    assert users, "the runtime stage needs a USER"
    user = users[-1].args.split(":")[0]
    assert user.isdigit() and int(user) != 0, f"USER should be a numeric non-root uid, got {users[-1].args!r}"
    entry = runtime.of("ENTRYPOINT")[-1]
    assert users[-1].line < entry.line


def test_entrypoint_is_python_m_jobs_with_a_real_command(runtime: Stage) -> None:
    entrypoints = runtime.of("ENTRYPOINT")
    assert entrypoints and entrypoints[-1].exec_form() == ["python", "-m", "jobs"]
    cmd = runtime.of("CMD")[-1].exec_form()
    assert cmd is not None and len(cmd) == 1
    commands = typer.main.get_command(run_app).commands  # type: ignore[attr-defined]
    assert cmd[0] in commands, f"`python -m jobs {cmd[0]}` is not a command ({sorted(commands)})"
    assert (REPO / "jobs" / "__main__.py").is_file()


def test_runtime_sets_workdir_and_unbuffered_output(runtime: Stage) -> None:
    assert runtime.of("WORKDIR")
    env = runtime.env()
    assert env.get("PYTHONUNBUFFERED") == "1"
    assert env.get("SPINDEX_DATA_DIR", "").startswith("/"), "run reports go to a writable absolute folder"


def test_source_keeps_its_layout_so_the_index_schema_is_found(stages: list[Stage], runtime: Stage) -> None:
    from ingest.index import schema

    assert schema.INDEX_SCHEMA_PATH == Path(schema.__file__).resolve().parents[2] / "schemas" / "index.json"
    destinations = {}
    for stage in stages:
        for copy in stage.of("COPY"):
            words = [w for w in copy.args.split() if not w.startswith("--")]
            if len(words) == 2:
                destinations[words[0].rstrip("/")] = PurePosixPath(words[1])
    for package in ("ingest", "jobs", "sandbox", "schemas"):
        assert package in destinations, f"the image should copy {package}/"
    root = destinations["ingest"].parent
    assert all(destinations[p] == root / p for p in ("ingest", "jobs", "sandbox", "schemas"))
    assert runtime.of("WORKDIR")[-1].args == str(root) or str(root) in runtime.env().get("PYTHONPATH", "")


def test_no_secret_is_baked_in(stages: list[Stage]) -> None:
    for stage in stages:
        for instruction in stage.of("ENV") + stage.of("ARG"):
            pairs = parse_assignments(instruction.args, legacy=instruction.keyword == "ENV")
            for name, value in pairs.items():
                assert not (SECRET_NAME.search(name) and value), f"line {instruction.line}: {name} has a value"
        for copy in stage.of("COPY") + stage.of("ADD"):
            assert not re.search(r"\.(pem|pfx|p12|key)\b|\.env\b", copy.args), f"line {copy.line}: {copy.args}"
    assert not [i for s in stages for i in s.of("ADD")], "use COPY; ADD fetches URLs and unpacks archives"


def _ignore_patterns() -> list[str]:
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def _ignored(path: str, patterns: list[str]) -> bool:
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        regex = re.escape(body.strip("/")).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        if re.fullmatch(f"{regex}(/.*)?", path):
            excluded = not negate
    return excluded


def test_dockerignore_keeps_secrets_and_clutter_out() -> None:
    patterns = _ignore_patterns()
    for path in (".env", "sandbox/.env", ".git/config", ".venv/bin/python", "spindex.pem", "certs/graph.pfx", "tests/unit/x.py", ".spindex/state/x"):
        assert _ignored(path, patterns), f".dockerignore should exclude {path}"


def test_dockerignore_keeps_everything_the_image_copies(stages: list[Stage]) -> None:
    patterns = _ignore_patterns()
    sources = []
    for stage in stages:
        for copy in stage.of("COPY"):
            if "--from=" in copy.args:
                continue
            sources += [w for w in copy.args.split() if not w.startswith("--")][:-1]
    assert sources
    for source in sources:
        path = REPO / source
        assert path.exists(), f"COPY {source}: not in the repository"
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        dropped = [str(f.relative_to(REPO)) for f in files if _ignored(str(f.relative_to(REPO)), patterns)]
        assert not dropped, f".dockerignore drops files the image needs: {dropped[:5]}"

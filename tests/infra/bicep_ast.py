"""A small reader of Bicep files for the infra tests, built on the tree-sitter-bicep grammar.

The Bicep CLI cannot run in the test environment, so this module turns a parsed file into
plain Python values: literals become str/int/bool/None/list/dict, anything computed becomes an
`Expr` holding its source text, `a ? b : c` becomes a `Ternary`. The tests then assert on
resource types, property values and the wiring between main.bicep and its modules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tree_sitter_bicep
from tree_sitter import Language, Node, Parser

LANGUAGE = Language(tree_sitter_bicep.language())
DECLARATION_KINDS = {
    "parameter_declaration": "param",
    "variable_declaration": "var",
    "resource_declaration": "resource",
    "module_declaration": "module",
    "output_declaration": "output",
}
# Bicep's built-in functions and decorators (learn.microsoft.com/azure/azure-resource-manager/bicep/bicep-functions).
BUILTIN_FUNCTIONS = frozenset(
    """
    allowed batchSize description discriminator export maxLength maxValue metadata minLength minValue
    sealed secure
    any array base64 base64ToJson base64ToString bool concat contains dataUri dataUriToString
    dateTimeAdd dateTimeFromEpoch dateTimeToEpoch deployer deployment empty endsWith environment
    extensionResourceId filter first flatten format getSecret groupBy guid indexOf int intersection
    items join json last lastIndexOf length list listKeys listAccountSas listServiceSas loadFileAsBase64
    loadJsonContent loadTextContent loadYamlContent managementGroup managementGroupResourceId map
    mapValue max min newGuid objectKeys padLeft pickZones range readEnvironmentVariable reduce
    reference replace resourceGroup resourceId shallowMerge skip sort split startsWith string
    subscription subscriptionResourceId substring take tenant tenantResourceId toLower toObject
    toUpper trim union uniqueString uri uriComponent uriComponentToString utcNow
    """.split()
)


@dataclass(frozen=True)
class Expr:
    """A value computed at deployment time, kept as its Bicep source text."""

    text: str


@dataclass(frozen=True)
class Ternary:
    """`condition ? consequence : alternative`, both branches converted."""

    condition: str
    consequence: Any
    alternative: Any


@dataclass
class Declaration:
    """One top-level `param`, `var`, `resource`, `module` or `output` of a file."""

    kind: str
    name: str
    line: int
    decorators: dict[str, list[Any]] = field(default_factory=dict)
    type: str | None = None  # param/output type, resource type string, or module path
    value: Any = None  # default value, variable value, resource/module body, output value
    has_default: bool = False
    condition: str | None = None  # the `if (...)` of a conditional resource or module
    existing: bool = False

    @property
    def description(self) -> str | None:
        """The text of the `@description(...)` decorator, if any."""
        args = self.decorators.get("description")
        return args[0] if args and isinstance(args[0], str) else None


@dataclass(frozen=True)
class SyntaxProblem:
    """An ERROR or MISSING node: where tree-sitter could not read the file."""

    path: Path
    line: int
    column: int
    kind: str
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.kind} near {self.text!r}"


class BicepFile:
    """A parsed .bicep file and its top-level declarations."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.source = path.read_bytes()
        self.tree = Parser(LANGUAGE).parse(self.source)
        self.declarations: list[Declaration] = []
        self.target_scope: str | None = None
        self._read_declarations()

    # ---- reading ----

    def _read_declarations(self) -> None:
        pending: dict[str, list[Any]] = {}
        for node in named(self.tree.root_node):
            if node.type == "decorators":
                for decorator in named(node):
                    call = named(decorator)[0]
                    if call.type == "call_expression":
                        name = text(call.child_by_field_name("function"))
                        arguments = call.child_by_field_name("arguments")
                        pending[name] = [to_value(a) for a in named(arguments)] if arguments else []
                    else:
                        pending[text(call)] = []
                continue
            if node.type == "target_scope_assignment":
                self.target_scope = to_value(named(node)[-1])
                continue
            kind = DECLARATION_KINDS.get(node.type)
            if kind is None:
                continue
            self.declarations.append(self._declaration(kind, node, pending))
            pending = {}

    def _declaration(self, kind: str, node: Node, decorators: dict[str, list[Any]]) -> Declaration:
        children = named(node)
        decl = Declaration(kind=kind, name=text(children[0]), line=node.start_point[0] + 1, decorators=decorators)
        rest = children[1:]
        if kind in ("param", "output"):
            decl.type = text(rest[0]) if rest and rest[0].type == "type" else None
            values = rest[1:] if decl.type is not None else rest
            if values:
                decl.value = to_value(values[-1])
                decl.has_default = kind == "param"
        elif kind == "var":
            decl.value = to_value(rest[-1])
        else:  # resource or module
            decl.type = to_value(rest[0])
            decl.existing = any(c.type == "existing" for c in node.children)
            body = rest[-1]
            if body.type == "if_statement":
                condition, body = named(body)[0], named(body)[-1]
                decl.condition = text(condition)
            decl.value = to_value(body)
        return decl

    # ---- queries ----

    def syntax_problems(self) -> list[SyntaxProblem]:
        """Every ERROR and MISSING node, with 1-based line and column."""
        problems: list[SyntaxProblem] = []
        for node in walk(self.tree.root_node):
            if node.is_error or node.is_missing:
                kind = "MISSING " + node.type if node.is_missing else "ERROR"
                line, column = node.start_point
                problems.append(SyntaxProblem(self.path, line + 1, column + 1, kind, text(node)[:60]))
        return problems

    def of_kind(self, kind: str) -> dict[str, Declaration]:
        """Declarations of one kind (param, var, resource, module, output) by symbolic name."""
        return {d.name: d for d in self.declarations if d.kind == kind}

    @property
    def params(self) -> dict[str, Declaration]:
        """The file's parameters."""
        return self.of_kind("param")

    @property
    def outputs(self) -> dict[str, Declaration]:
        """The file's outputs."""
        return self.of_kind("output")

    @property
    def modules(self) -> dict[str, Declaration]:
        """The file's module declarations."""
        return self.of_kind("module")

    def resources_of_type(self, resource_type: str) -> list[Declaration]:
        """Resource declarations whose type (without the API version) is `resource_type`."""
        return [
            d
            for d in self.of_kind("resource").values()
            if isinstance(d.type, str) and d.type.split("@")[0].lower() == resource_type.lower()
        ]

    def identifier_uses(self) -> list[tuple[str, int]]:
        """(name, line) of every identifier used as a value, not as a key, function or declared name."""
        uses: list[tuple[str, int]] = []
        for node in walk(self.tree.root_node):
            if node.type != "identifier":
                continue
            parent = node.parent
            if parent is None:
                continue
            if parent.type in DECLARATION_KINDS and named(parent)[0] == node:
                continue
            if parent.type == "object_property" and named(parent)[0] == node:
                continue
            if parent.type == "call_expression" and parent.child_by_field_name("function") == node:
                continue
            if parent.type == "for_statement" and parent.child_by_field_name("initializer") == node:
                continue
            uses.append((text(node), node.start_point[0] + 1))
        return uses

    def loop_variables(self) -> set[str]:
        """Names bound by `for x in ...` and `for (x, i) in ...`."""
        names: set[str] = set()
        for node in walk(self.tree.root_node):
            if node.type == "for_statement":
                initializer = node.child_by_field_name("initializer")
                if initializer is not None:
                    names.update(text(n) for n in walk(initializer) if n.type == "identifier")
        return names

    def function_calls(self) -> list[tuple[str, int]]:
        """(function name, line) of every call, decorators included."""
        return [
            (text(node.child_by_field_name("function")), node.start_point[0] + 1)
            for node in walk(self.tree.root_node)
            if node.type == "call_expression"
            and node.child_by_field_name("function") is not None
            and node.child_by_field_name("function").type == "identifier"
        ]

    def member_chains(self) -> list[tuple[str, list[str], int]]:
        """(root identifier, property names, line) of every outermost `a.b.c` access."""
        chains: list[tuple[str, list[str], int]] = []
        for node in walk(self.tree.root_node):
            if node.type != "member_expression" or (node.parent is not None and node.parent.type == "member_expression"):
                continue
            properties: list[str] = []
            current = node
            while current.type == "member_expression":
                properties.insert(0, text(current.child_by_field_name("property")))
                current = current.child_by_field_name("object")
            if current.type == "identifier":
                chains.append((text(current), properties, node.start_point[0] + 1))
        return chains


def text(node: Node | None) -> str:
    """The source text of a node."""
    return "" if node is None or node.text is None else node.text.decode()


def named(node: Node) -> list[Node]:
    """Named children of a node, comments left out."""
    return [c for c in node.named_children if c.type != "comment"]


def walk(node: Node):
    """Every node below and including `node`, depth first."""
    yield node
    for child in node.children:
        yield from walk(child)


def to_value(node: Node) -> Any:
    """A literal as a Python value; anything computed as Expr or Ternary."""
    kind = node.type
    if kind == "string":
        if any(c.type == "interpolation" for c in named(node)):
            return Expr(text(node))
        parts = []
        for child in named(node):
            if child.type == "escape_sequence":
                parts.append({"\\'": "'", "\\\\": "\\", "\\n": "\n", "\\r": "\r", "\\t": "\t", "\\$": "$"}.get(text(child), text(child)))
            else:
                parts.append(text(child))
        return "".join(parts)
    if kind == "multiline_string":
        return text(node)[3:-3]
    if kind == "number":
        return int(text(node))
    if kind == "boolean":
        return text(node) == "true"
    if kind == "null":
        return None
    if kind == "array":
        return [to_value(c) for c in named(node)]
    if kind == "object":
        result: dict[str, Any] = {}
        for prop in named(node):
            if prop.type != "object_property":
                continue
            key_node, value_node = named(prop)[0], named(prop)[-1]
            key = to_value(key_node) if key_node.type == "string" else text(key_node)
            result[key.text if isinstance(key, Expr) else key] = to_value(value_node)
        return result
    if kind == "ternary_expression":
        return Ternary(
            text(node.child_by_field_name("condition")),
            to_value(node.child_by_field_name("consequence")),
            to_value(node.child_by_field_name("alternative")),
        )
    if kind == "parenthesized_expression" and len(named(node)) == 1:
        return to_value(named(node)[0])
    return Expr(text(node))


def branches(value: Any) -> list[Any]:
    """The possible values of `value`: both branches of a Ternary (recursively), else itself."""
    if isinstance(value, Ternary):
        return branches(value.consequence) + branches(value.alternative)
    return [value]


def dig(value: Any, *path: str) -> Any:
    """`value[path[0]][path[1]]...`, or None where a key is missing."""
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value

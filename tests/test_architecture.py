"""The apps depend one way only, and imports inside functions say why (docs/architecture.md#direction).

Parses the source with ``ast`` (no Django, no database), so a circle or an upward import fails here
before it fails anywhere else. Counted: ``import x`` / ``from x import y`` at any depth (inside
functions and methods too), relative imports resolved, and ``importlib.import_module("x")`` with a
literal name. Not counted: imports under ``if TYPE_CHECKING:`` (they never run).
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Lower number = lower layer. An app may import its own modules and any app of a strictly lower layer.
# The top layer's apps are peers and do not import each other.
LAYERS: dict[str, int] = {
    "core": 0,
    "accounts": 1,
    "exchanges": 2,
    "positions": 3,
    "riskengine": 4,
    "strategies": 4,
    # Research (backtests replay the risk plan and the strategies' signals; optimization; ML) and the
    # live performance numbers: above the engine and its peers, which it replays.
    "analytics": 5,
    # Reacts to the engine (positions' hooks) and reports on it; may use strategies once they exist.
    "notifications": 5,
}
# ``tradingsite`` wires the apps together and may import any of them; nothing imports it (nor ``web``, the
# trader's pages, nor ``bench``), and those two may import any app.
WIRING = ("tradingsite", "web", "bench")
OURS = frozenset(LAYERS) | frozenset(WIRING)


@dataclass(frozen=True)
class Import:
    """One import of one of our modules, where it is written."""

    path: Path
    line: int
    end_line: int
    target: str  # dotted module name, e.g. "positions.services.intake"
    in_function: bool

    root: Path

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(self.root)}:{self.line}"

    @property
    def top(self) -> str:
        return self.target.split(".")[0]


def _is_source(path: Path, root: Path) -> bool:
    parts = path.relative_to(root).parts
    return not (
        "tests" in parts or "migrations" in parts or path.name == "conftest.py" or path.name.startswith("test_")
    )


def _modules(packages: tuple[str, ...], root: Path = ROOT) -> list[Path]:
    return sorted(p for package in packages for p in (root / package).rglob("*.py") if _is_source(p, root))


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(path: Path, root: Path, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` names (relative imports resolved against ``path``)."""
    if not node.level:
        return node.module or ""
    package = _module_name(path, root).split(".")
    if path.name != "__init__.py":
        package.pop()
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, root: Path = ROOT) -> Iterator[Import]:
    tree = ast.parse(path.read_text(), filename=str(path))

    def visit(node: ast.AST, in_function: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                # Only the ``else`` branch runs.
                for stmt in child.orelse:
                    yield from visit_one(stmt, in_function)
                continue
            yield from visit_one(child, in_function)

    def visit_one(node: ast.AST, in_function: bool) -> Iterator[Import]:
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = _resolve(path, root, node)
            # ``from . import selectors`` names the module ``<package>.selectors``.
            targets = [module] if node.module else [f"{module}.{alias.name}" for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            targets = [node.args[0].value]
        for target in targets:
            if target.split(".")[0] in OURS:
                assert isinstance(node, ast.stmt | ast.expr)  # an import statement or an import_module call
                yield Import(path, node.lineno, node.end_lineno or node.lineno, target, in_function, root)
        inner = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        if isinstance(node, ast.If) and _is_type_checking(node):
            for stmt in node.orelse:
                yield from visit_one(stmt, inner)
            return
        yield from visit(node, inner)

    yield from visit(tree, False)


# Tool pragmas are not reasons: a comment of nothing but a lint or type-check directive explains nothing.
PRAGMA = re.compile(
    r"#|noqa(:\s*[A-Z]+[0-9]+(\s*,\s*[A-Z]+[0-9]+)*)?|type:\s*ignore(\[[^\]]*\])?|pragma:[^#]*|fmt:\s*\w+"
)


def _comment_lines(path: Path) -> tuple[set[int], set[int]]:
    """Lines that carry a comment with words in it, and the lines that are nothing but such a comment."""
    with_comment: set[int] = set()
    only_comment: set[int] = set()
    lines = path.read_text().splitlines()
    for token in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if token.type == tokenize.COMMENT and re.search(r"[A-Za-z]", PRAGMA.sub("", token.string)):
            line = token.start[0]
            with_comment.add(line)
            if lines[line - 1].lstrip().startswith("#"):
                only_comment.add(line)
    return with_comment, only_comment


def _direction_error(importer: str, imported: str) -> str | None:
    if importer == imported or importer == "tradingsite":
        return None
    if imported in WIRING:
        return f"nothing imports {imported}"
    if importer in ("bench", "web"):  # the web pages, like the benches, sit above every app
        return None
    if LAYERS[imported] < LAYERS[importer]:
        return None
    if LAYERS[imported] == LAYERS[importer]:
        return f"{importer} and {imported} are peers and do not import each other"
    return f"{importer} sits below {imported}"


def test_apps_depend_one_way() -> None:
    """analytics / riskengine / strategies -> positions -> exchanges -> accounts -> core; none upward."""
    offenders = []
    for path in _modules(tuple(LAYERS)):
        importer = _module_name(path, ROOT).split(".")[0]
        for imp in _imports(path):
            error = _direction_error(importer, imp.top)
            if error:
                offenders.append(f"{imp.where}: imports {imp.target} ({error})")
    assert not offenders, "imports against the apps' direction (docs/architecture.md#direction):\n" + "\n".join(
        offenders
    )


def _unexplained(packages: tuple[str, ...], root: Path = ROOT) -> list[str]:
    offenders = []
    for path in _modules(packages, root):
        imports = [imp for imp in _imports(path, root) if imp.in_function]
        if not imports:
            continue
        with_comment, only_comment = _comment_lines(path)
        import_lines = {line for imp in imports for line in range(imp.line, imp.end_line + 1)}
        for imp in imports:
            if with_comment & set(range(imp.line, imp.end_line + 1)):
                continue
            # A comment line right above a run of such imports explains the whole run.
            above = imp.line - 1
            while above in import_lines and above not in only_comment:
                above -= 1
            if above not in only_comment:
                offenders.append(f"{imp.where}: {imp.target}")
    return offenders


@pytest.mark.parametrize("packages", [tuple(LAYERS), ("bench",)], ids=["apps", "bench"])
def test_imports_inside_functions_say_why(packages: tuple[str, ...]) -> None:
    """An import of our own code inside a function has a comment on its line or just above it."""
    offenders = _unexplained(packages)
    assert not offenders, (
        "imports inside functions without a reason written next to them (move them to the module's top, "
        "or say why they cannot be there):\n" + "\n".join(offenders)
    )


def test_the_checks_can_fail(tmp_path: Path) -> None:
    """The parser finds an upward import inside a function, a relative one, and an unexplained one."""
    (tmp_path / "accounts").mkdir()
    probe = tmp_path / "accounts" / "probe.py"
    probe.write_text(
        "def f() -> None:\n"
        "    from positions import models\n"
        "    # the app registry is not ready at import time\n"
        "    from .models import User\n"
        "    from . import selectors\n"
    )
    found = [(imp.line, imp.target, imp.in_function) for imp in _imports(probe, tmp_path)]
    assert found == [
        (2, "positions", True),
        (4, "accounts.models", True),
        (5, "accounts.selectors", True),
    ]
    assert _direction_error("accounts", "positions") == "accounts sits below positions"
    assert _direction_error("positions", "tradingsite") == "nothing imports tradingsite"
    assert _unexplained(("accounts",), tmp_path) == ["accounts/probe.py:2: positions"]
    probe.write_text("def f() -> None:\n    from . import models  # noqa: F401\n")
    assert _unexplained(("accounts",), tmp_path) == ["accounts/probe.py:2: accounts.models"]
    probe.write_text("def f() -> None:\n    from . import signals  # noqa: F401  connects receivers\n")
    assert _unexplained(("accounts",), tmp_path) == []

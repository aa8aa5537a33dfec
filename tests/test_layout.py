"""The package layout the architecture promises (docs/architecture.md), checked on the source tree.

- no function body over 60 lines in ``src/`` (40 in ``src/deepnmf/cli/``);
- the jobs live in ``deepnmf.pipelines`` (nothing of them left at the top level);
- the module-level import graph of the package has no cycle;
- the lower layers do not import the upper ones at module level
  (torch modules in ``nn/`` know nothing of training loops, model files, pipelines or the CLI).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "deepnmf"
MAX_BODY = 60
MAX_CLI_BODY = 40


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _body_length(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from the first statement after the docstring to the end of the function."""
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]
    if not body:
        return 0
    return body[-1].end_lineno - body[0].lineno + 1


def _long_functions() -> list[str]:
    found = []
    for name, path in _modules().items():
        limit = MAX_CLI_BODY if name.startswith("deepnmf.cli") else MAX_BODY
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = _body_length(node)
                if n > limit:
                    found.append(f"{path.relative_to(SRC.parent)}:{node.lineno} {node.name} ({n} > {limit} lines)")
    return found


def test_body_length_counter_counts_statements_not_docstrings():
    tree = ast.parse('def f():\n    """doc\n\n    more doc\n    """\n    a = 1\n\n    return a\n')
    assert _body_length(tree.body[0]) == 3


def test_no_function_body_over_the_limit():
    assert _long_functions() == []


@pytest.mark.parametrize("old", ["enhancement.py", "enhancement_baselines.py", "separation.py"])
def test_jobs_are_not_at_the_top_level(old):
    assert not (SRC / old).exists()
    assert (SRC / "pipelines" / old).exists()


def test_every_job_has_a_pipeline_module():
    for job in ("dictionary", "enhancement", "separation", "synergies", "demo"):
        assert (SRC / "pipelines" / f"{job}.py").is_file(), job


def _module_level_imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Package modules imported at module level (not inside functions or TYPE_CHECKING blocks)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()

    def visit(stmts):
        for node in stmts:
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                found.add(base)
                found.update(f"{base}.{a.name}" for a in node.names)
            elif isinstance(node, ast.If) and "TYPE_CHECKING" not in ast.unparse(node.test):
                visit(node.body + node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body + node.orelse + node.finalbody)

    visit(tree.body)
    return {m for m in found if m in known and m != name}


def _import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _module_level_imports(name, path, known) for name, path in modules.items()}


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := dfs(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := dfs(node)):
            return cycle
    return None


def test_cycle_finder_finds_a_planted_cycle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_module_level_imports_form_no_cycle():
    graph = _import_graph()
    # a package's __init__ importing its own submodules is not a cycle of the code
    for name in graph:
        graph[name] = {m for m in graph[name] if not m.startswith(name + ".")}
    assert _find_cycle(graph) is None


@pytest.mark.parametrize("lower, upper", [
    ("deepnmf.nn", ("deepnmf.training", "deepnmf.io", "deepnmf.pipelines", "deepnmf.cli", "deepnmf.experiments")),
    ("deepnmf.solvers", ("deepnmf.models", "deepnmf.pipelines", "deepnmf.cli", "deepnmf.experiments")),
    ("deepnmf.divergences", ("deepnmf.models", "deepnmf.nn", "deepnmf.pipelines", "deepnmf.cli")),
    ("deepnmf.models", ("deepnmf.pipelines", "deepnmf.cli", "deepnmf.experiments")),
    ("deepnmf.pipelines", ("deepnmf.cli", "deepnmf.experiments")),
])
def test_lower_layers_do_not_import_upper_ones(lower, upper):
    graph = _import_graph()
    bad = {f"{m} -> {dep}" for m, deps in graph.items() if m == lower or m.startswith(lower + ".")
           for dep in deps if dep.startswith(upper)}
    assert bad == set()

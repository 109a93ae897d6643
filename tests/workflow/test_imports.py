"""No import cycle among the project's modules (imports inside functions and under
TYPE_CHECKING count too: a cycle is a design knot even when Python tolerates it; the same
check as ``../shared/tools/import_cycles.py``, kept here so CI needs nothing outside the repo),
and the workflow's stages import only backwards, never another stage's rule entry point."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("genex_core", "workflow_scripts")


def _imports() -> dict[str, set[str]]:
    modules = {
        ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): p
        for package in PACKAGES
        for p in (REPO / package).rglob("*.py")
    }
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        # a package's __init__ re-exports its modules: an edge to it is not a dependency knot
        graph[name] = {m for m in found if m in modules and m != name and modules[m].name != "__init__.py"}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle():
    assert _cycle(_imports()) is None, " -> ".join(_cycle(_imports()))


def test_the_check_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


STAGES = ("data", "integrate", "analyse", "score", "report")  # workflow_scripts/<stage>/, in run order


def _stage(module: str) -> int | None:
    parts = module.split(".")
    return STAGES.index(parts[1]) if parts[0] == "workflow_scripts" and len(parts) > 2 and parts[1] in STAGES else None


def _entry_points() -> set[str]:
    """Rule scripts: modules run by Snakemake's ``script:`` (they have a ``__main__`` block)."""
    return {
        ".".join(p.relative_to(REPO).with_suffix("").parts)
        for p in (REPO / "workflow_scripts").rglob("*.py")
        if 'if __name__ == "__main__"' in p.read_text()
    }


def test_stages_import_only_backwards_and_no_other_stages_entry_point():
    graph, entries = _imports(), _entry_points()
    wrong = []
    for module, imported in graph.items():
        for other in imported:
            here, there = _stage(module), _stage(other)
            if there is not None and (here is None or there > here):
                wrong.append(f"{module} imports the later stage's {other}")
            elif there is not None and there != here and other in entries:
                wrong.append(f"{module} imports {other}, the entry point of another stage")
    assert not wrong, "\n".join(wrong)

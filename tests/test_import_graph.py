"""The package's imports go one way (data <- models <- recipes <- training / serving): no module imports,
directly or through others, a module that imports it back. Read from the source, imports inside functions
included (a lazy import is still a circle); imports only for type annotations (`if TYPE_CHECKING:`) are not."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "personalize_torch"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def runtime_imports(tree: ast.AST, modules: set[str]) -> list[str]:
    """Every module of `modules` imported, `if TYPE_CHECKING:` blocks left out. `from package import name`
    imports the submodule `package.name` when there is one, else the package."""
    names = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.extend(f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module
                         for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {n for n in runtime_imports(ast.parse(path.read_text()), set(modules)) if n in modules and n != name}
            for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return out


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles_in_the_package():
    assert cycles(import_graph()) == []


def test_layers_import_one_way():
    """data never imports models, recipes, training or serving; models never import recipes; recipes never
    import training, solution versions or serving; serving never imports training."""
    graph = import_graph()
    rules = {"personalize_torch.data": ("personalize_torch.models", "personalize_torch.recipes",
                                        "personalize_torch.training", "personalize_torch.serving"),
             "personalize_torch.models": ("personalize_torch.recipes", "personalize_torch.training",
                                          "personalize_torch.serving"),
             "personalize_torch.recipes": ("personalize_torch.training", "personalize_torch.solution_version",
                                           "personalize_torch.serving"),
             "personalize_torch.serving": ("personalize_torch.training",)}
    broken = [(module, imported) for module, imports in graph.items() for layer, forbidden in rules.items()
              if module == layer or module.startswith(layer + ".")
              for imported in imports if imported.startswith(forbidden)]
    assert broken == []

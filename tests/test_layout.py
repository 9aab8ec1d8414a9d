"""The code's layout holds: one package, `tfgate`, and nothing imported by the old top-level names.

From a checkout, `import pipeline` would still find the folder and run, then fail from a wheel (which
installs `tfgate` alone) or load a second copy of a module beside `tfgate.pipeline`'s.
"""

from __future__ import annotations

import ast
import subprocess

from tests.conftest import REPO

OLD_TOP_LEVEL = {"pipeline", "serving", "clients"}


def _sources() -> list[str]:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "*.py"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    return [f for f in files if "_pb2" not in f and (REPO / f).exists()]


def test_no_module_imports_the_old_top_level_names():
    found = []
    for path in _sources():
        tree = ast.parse((REPO / path).read_text(), path)
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            found += [f"{path}:{node.lineno} {n}" for n in names if n.split(".")[0] in OLD_TOP_LEVEL]
    assert not found, "import tfgate.<package> instead: " + ", ".join(found)


def _module_names() -> dict[str, tuple[str, bool]]:
    """Every tfgate module of the source tree: name -> (path, is a package), by pyproject's package-dir."""
    import tomllib

    dirs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    out = {}
    for path in _sources():
        folder = max((d for d in dirs.values() if path.startswith(d + "/")), key=len, default=None)
        if folder is None:
            continue
        package = next(p for p, d in dirs.items() if d == folder)
        parts = path[len(folder) + 1:].removesuffix(".py").split("/")
        is_package = parts[-1] == "__init__"
        out[".".join([package, *parts[:-1]] if is_package else [package, *parts])] = (path, is_package)
    return out


def _import_graph() -> dict[str, set[str]]:
    """Module -> the tfgate modules it imports. Imports inside functions count too: a lazy import is
    still a dependency (the model server's inference/servable circle ran through one)."""
    modules = _module_names()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, (path, is_package) in modules.items():
        package = name if is_package else name.rpartition(".")[0]
        for node in ast.walk(ast.parse((REPO / path).read_text(), path)):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(parent + ([node.module] if node.module else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:  # an attribute of a module, or not ours
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_no_import_cycles_and_no_upward_imports():
    graph = _import_graph()
    assert {"tfgate.serving.model_server.data_plane", "tfgate.clients.gateway_client"} <= set(graph)
    cycle = _first_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
    # The servers' shared modules are leaves: they import only each other.
    leaves = {f"tfgate.serving.{m}" for m in ("status", "tfs_protos", "tensor_limits", "tensor_codec",
                                              "grpc_plumbing", "event_loop")}
    assert leaves <= set(graph)
    assert not {f"{a} -> {b}" for a in leaves for b in graph[a] - leaves}
    # Serving and the pipeline never import the client side; the client library never imports the
    # servers or the pipeline. The command line (tfgate.clients.cli) is where they meet.
    upward = [f"{a} -> {b}" for a, targets in graph.items() for b in sorted(targets)
              if (_in(a, "tfgate.serving") or _in(a, "tfgate.pipeline")) and _in(b, "tfgate.clients")
              or _in(a, "tfgate.clients") and not _in(a, "tfgate.clients.cli")
              and (_in(b, "tfgate.serving") or _in(b, "tfgate.pipeline"))]
    assert not upward, "imports across layers: " + ", ".join(upward)


def _first_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """Depth-first search; a module met again while still on the path closes a cycle."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in sorted(graph):
        if root in state:
            continue
        state[root] = 1
        path, stack = [root], [iter(sorted(graph[root]))]
        while stack:
            child = next(stack[-1], None)
            if child is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(child) == 1:
                return path[path.index(child):] + [child]
            elif child not in state:
                state[child] = 1
                path.append(child)
                stack.append(iter(sorted(graph[child])))
    return None


def test_only_a_dataset_package_knows_its_dataset():
    """Each dataset's knowledge lives in its package (`tfgate.pipeline.housing`, `.fashion`: schema,
    preprocessing, model, metrics, export); the rest of the product asks the dataset's Task and never
    compares a name with "housing" or "fashion"."""
    modules = _module_names()
    found = []
    for name, (path, _) in modules.items():
        if _in(name, "tfgate.pipeline.housing") or _in(name, "tfgate.pipeline.fashion"):
            continue
        for node in ast.walk(ast.parse((REPO / path).read_text(), path)):
            if isinstance(node, ast.Compare) and any(
                    isinstance(c, ast.Constant) and c.value in ("housing", "fashion")
                    for c in (node.left, *node.comparators)):
                found.append(f"{path}:{node.lineno}")
    assert not found, "dataset branches outside the dataset's package: " + ", ".join(found)


def test_the_command_line_offers_every_dataset():
    from tfgate.clients.cli.pipeline import DatasetName
    from tfgate.pipeline import datasets

    assert [d.value for d in DatasetName] == list(datasets.NAMES)

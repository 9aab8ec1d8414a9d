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

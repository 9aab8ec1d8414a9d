"""Every shell command in the README is either executed here or tagged with why it cannot be.

The `runnable` blocks run in order, as written, in one bash session in a scratch copy of the
repository's layout; background servers they start are stopped by PID when the script ends.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

TAGS = {"runnable", "walkthrough", "ci", "placeholder", "benchmark", "network", "cloud", "cluster"}
FENCE = re.compile(r"^```(\w+)(?: (\w[\w-]*))?\n(.*?)^```\n", re.S | re.M)


def blocks(language: str) -> list[tuple[str | None, str]]:
    text = (REPO / "README.md").read_text()
    return [(tag, body) for lang, tag, body in FENCE.findall(text) if lang == language]


def test_every_shell_block_is_tagged():
    found = blocks("sh")
    assert found, "no shell blocks found: the README or this parser changed"
    untagged = [body.splitlines()[0] for tag, body in found if tag not in TAGS]
    assert not untagged, f"shell blocks without a known tag: {untagged}"


def test_walkthrough_blocks_repeat_runnable_commands():
    runnable = "\n".join(body for tag, body in blocks("sh") if tag == "runnable")
    for tag, body in blocks("sh"):
        if tag == "walkthrough":
            for line in body.splitlines():
                assert line.strip() in runnable, f"not in the walkthrough: {line}"


def test_runnable_blocks_run_as_written(tmp_path):
    script = "\n".join(body for tag, body in blocks("sh") if tag == "runnable")
    assert "tfgate pipeline" in script and "tfgate predict" in script
    (tmp_path / "data").symlink_to(REPO / "data")
    (tmp_path / "work").mkdir()
    wrapped = (
        "set -euo pipefail\n"
        # servers the blocks start in the background are stopped by their PIDs whatever happens
        "trap 'for pid in $(jobs -p); do kill $pid 2>/dev/null || true; done; wait' EXIT\n" + script
    )
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    result = subprocess.run(["bash", "-c", wrapped], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=1500)
    logs = "".join(p.read_text(errors="replace")[-2000:] for p in (tmp_path / "work").glob("*.log"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:] + logs
    predictions = (tmp_path / "work" / "housing-predictions.csv").read_text().splitlines()
    assert len(predictions) == 20_641  # header + every row of the bundled CSV
    assert len((tmp_path / "work" / "fashion-top3.csv").read_text().splitlines()) == 4_444
    assert "from housing version 1" in result.stdout
    assert '"predictions"' in result.stdout  # the REST answer

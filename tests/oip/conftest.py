"""The v2 clients' venv (.venv/oip, built by `make install` from requirements/oip.txt)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OIP_PYTHON = REPO / ".venv" / "oip" / "bin" / "python"
CLIENTS = Path(__file__).resolve().parent / "clients"


@pytest.fixture(scope="session")
def oip_python() -> Path:
    assert OIP_PYTHON.exists(), f"{OIP_PYTHON} missing: run `make install` (it builds the v2 clients' venv)"
    return OIP_PYTHON


def run_client(python: Path, script: str, *args: str, timeout: float = 120) -> dict:
    """Run a client script in the v2 clients' venv; its stdout's last line is JSON."""
    proc = subprocess.run([str(python), str(CLIENTS / script), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{script} {' '.join(map(str, args))} failed:\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])

"""checkov scans the rendered manifests and both Dockerfiles; it must pass.

Skipped checks are listed, each with its reason, in k8s/checkov.yaml (global) or next to what
they excuse (`# checkov:skip=` in a Dockerfile). checkov lives in its own venv, .venv/checkov,
made by `make install` (its pins clash with TensorFlow's).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.k8s.conftest import K8S, REPO, TARGETS

CHECKOV = Path(sys.prefix) / "checkov" / "bin" / "checkov"
DOCKERFILES = [REPO / "serving" / "Dockerfile", REPO / "pipeline" / "Dockerfile"]


def test_checkov_passes(rendered, tmp_path):
    assert CHECKOV.exists(), f"{CHECKOV} missing: run `make install` (it builds the checkov venv)"
    for target in TARGETS:
        (tmp_path / (target.replace("/", "_").replace("+", "_") + ".yaml")).write_text(rendered.text[target])
    for df in DOCKERFILES:
        d = tmp_path / df.parent.name
        d.mkdir()
        shutil.copy(df, d / "Dockerfile")
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_EXPERIMENTAL_IMAGE_REFERENCING": "False"}
    proc = subprocess.run(
        [str(CHECKOV), "--config-file", str(K8S / "checkov.yaml"), "-d", str(tmp_path), "-o", "json",
         "--quiet"],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    try:
        reports = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"checkov exit {proc.returncode}, no JSON:\n{proc.stdout[-2000:]}\n"
                             f"{proc.stderr[-2000:]}") from None
    reports = reports if isinstance(reports, list) else [reports]
    failed = [f"{r['check_type']}: {c['check_id']} {c['check_name']} - {c['resource']} ({c['file_path']})"
              for r in reports for c in r.get("results", {}).get("failed_checks", [])]
    assert not failed, "checkov findings:\n" + "\n".join(failed)
    scanned = {r["check_type"] for r in reports}
    assert {"kubernetes", "dockerfile"} <= scanned, f"checkov scanned only {scanned}"
    assert proc.returncode == 0, proc.stderr[-2000:]
    # Every skip is deliberate: the Dockerfile one must be the only inline suppression.
    skipped = {c["check_id"] for r in reports for c in r.get("results", {}).get("skipped_checks", [])}
    assert skipped <= {"CKV_DOCKER_3"}, skipped

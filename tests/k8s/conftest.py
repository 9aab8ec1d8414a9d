"""Rendering k8s/ once per session: every overlay, every Job, and overlays with components."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"

OVERLAYS = ["overlays/gpu", "overlays/cpu"]
JOBS = ["jobs/pipeline", "jobs/train", "jobs/train-multiworker", "jobs/publish"]
# Overlay + optional components, rendered through a generated kustomization.
WITH_COMPONENTS = {
    "gpu+servicemonitor+gcs": ("overlays/gpu", ["components/servicemonitor", "components/model-store-gcs"]),
    "cpu+servicemonitor": ("overlays/cpu", ["components/servicemonitor"]),
}
TARGETS = [*OVERLAYS, *JOBS, *WITH_COMPONENTS]


def kustomize(directory: Path) -> str:
    proc = subprocess.run([KUBECTL, "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"kubectl kustomize {directory} failed:\n{proc.stderr}"
    return proc.stdout


class Rendered(dict):
    """target name -> list of objects; `.text[target]` keeps the YAML as rendered."""

    def __init__(self):
        super().__init__()
        self.text: dict[str, str] = {}

    def find(self, target: str, kind: str, name: str) -> dict:
        hits = [o for o in self[target] if o["kind"] == kind and o["metadata"]["name"].startswith(name)]
        assert len(hits) == 1, f"{target}: expected one {kind} {name}, found {len(hits)}"
        return hits[0]


@pytest.fixture(scope="session")
def rendered(tmp_path_factory) -> Rendered:
    out = Rendered()
    tmp = tmp_path_factory.mktemp("kustomize")
    for target in TARGETS:
        if target in WITH_COMPONENTS:
            # As a user would: the overlay with `components:` added, copied so paths stay valid.
            base, components = WITH_COMPONENTS[target]
            d = tmp / target
            shutil.copytree(K8S / base, d)
            kust = yaml.safe_load((d / "kustomization.yaml").read_text())
            # kustomize wants relative paths.
            kust["resources"] = [os.path.relpath(K8S / base / r, d) if r.startswith("..") else r
                                 for r in kust["resources"]]
            kust["components"] = [os.path.relpath(K8S / c, d) for c in components]
            (d / "kustomization.yaml").write_text(yaml.safe_dump(kust))
            text = kustomize(d)
        else:
            text = kustomize(K8S / target)
        out.text[target] = text
        out[target] = [o for o in yaml.safe_load_all(text) if o]
    return out


def tf_serving_container(objs: list[dict]) -> dict:
    (dep,) = [o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == "tf-serving"]
    (c,) = [c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "tf-serving"]
    return c


def config_map_files(objs: list[dict], prefix: str) -> dict[str, str]:
    (cm,) = [o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith(prefix + "-")]
    return cm["data"]

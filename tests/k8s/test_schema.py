"""Every rendered object validates against the Kubernetes OpenAPI schemas, offline.

kubernetes-validate bundles the schemas; strict mode also rejects unknown fields (a typo such
as `readinesProbe` would otherwise pass silently). 1.29 is the oldest Kubernetes these
manifests support (native gRPC probes, Indexed Jobs, PodDisruptionBudget policy/v1 are all GA
there); 1.32 matches the pinned kubectl.
"""

from __future__ import annotations

import jsonschema
import kubernetes_validate
import pytest

from tests.k8s.conftest import TARGETS

KUBERNETES_VERSIONS = ["1.29.0", "1.32.0"]

_LABEL_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        "matchExpressions": {"type": "array"},
    },
}
# CRDs have no schema in kubernetes-validate: the Prometheus Operator's ServiceMonitor fields
# that the servicemonitor component uses, strict like the rest.
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "required": ["selector", "endpoints"],
                "properties": {
                    "selector": _LABEL_SELECTOR,
                    "namespaceSelector": {"type": "object"},
                    "endpoints": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["port"],
                            "properties": {
                                "port": {"type": "string"},
                                "path": {"type": "string", "pattern": "^/"},
                                "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                                "scheme": {"enum": ["http", "https"]},
                            },
                        },
                    },
                },
            },
        },
    },
}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("target", TARGETS)
def test_objects_validate(rendered, target, version):
    problems = []
    for obj in rendered[target]:
        what = f"{obj['kind']} {obj['metadata']['name']}"
        crd = CRD_SCHEMAS.get((obj["apiVersion"], obj["kind"]))
        try:
            if crd is not None:
                jsonschema.validate(obj, crd)
            else:
                kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(f"{what}: no schema for {obj['apiVersion']} in Kubernetes {version}")
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as exc:
            path = "/".join(str(p) for p in getattr(exc, "path", []) or [])
            problems.append(f"{what}: {path}: {exc.message}")
    assert not problems, "\n".join(problems)


def test_validation_catches_a_typo():
    """The check bites: an unknown field fails strict validation."""
    obj = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
           "spec": {"clusterIp": "None", "ports": [{"port": 1}]}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(obj, KUBERNETES_VERSIONS[-1], strict=True)

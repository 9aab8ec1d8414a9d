"""Validate InferenceService YAML against the kserve SDK's own typed models (run by .venv/oip/bin/python).

`kserve_schema.py FILE`: every InferenceService in FILE (multi-document YAML) is built, strictly, from
kserve.models / kubernetes.client.models: a key either model does not know is an error (a typo such as
`readinesProbe` would otherwise pass), and the models' constructors refuse missing required fields and
values outside their enums. Prints {"checked": N} as JSON.
"""

from __future__ import annotations

import json
import re
import sys

import kserve.models
import kubernetes.client.models
import yaml

PRIMITIVE = {"str": str, "int": int, "bool": bool, "float": (int, float)}


def model_class(name: str):
    return getattr(kserve.models, name, None) or getattr(kubernetes.client.models, name)


def build(value, type_name: str, path: str):
    if m := re.fullmatch(r"[lL]ist\[(.+)\]", type_name):
        if not isinstance(value, list):
            raise SystemExit(f"{path}: expected a list")
        return [build(v, m[1], f"{path}[{i}]") for i, v in enumerate(value)]
    if m := re.fullmatch(r"(?:dict\(str, (.+)\)|Dict\[str, (.+)\])", type_name):
        if not isinstance(value, dict):
            raise SystemExit(f"{path}: expected a map")
        return {k: build(v, m[1] or m[2], f"{path}.{k}") for k, v in value.items()}
    if type_name == "object":  # IntOrString and the like
        return value
    if type_name in PRIMITIVE:
        if not isinstance(value, PRIMITIVE[type_name]) or (type_name != "bool" and isinstance(value, bool)):
            raise SystemExit(f"{path}: expected {type_name}, got {value!r}")
        return value
    cls = model_class(type_name)
    if not isinstance(value, dict):
        raise SystemExit(f"{path}: expected a {type_name} object")
    by_key = {json_key: attr for attr, json_key in cls.attribute_map.items()}
    kwargs = {}
    for key, v in value.items():
        if key not in by_key:
            raise SystemExit(f"{path}: unknown field {key!r} for {type_name}")
        attr = by_key[key]
        kwargs[attr] = build(v, cls.openapi_types[attr], f"{path}.{key}")
    try:
        return cls(**kwargs)
    except ValueError as e:
        raise SystemExit(f"{path}: {e}") from None


def main() -> None:
    checked = 0
    with open(sys.argv[1]) as f:
        for doc in yaml.safe_load_all(f):
            if doc and doc.get("kind") == "InferenceService":
                if doc.get("apiVersion") != "serving.kserve.io/v1beta1":
                    raise SystemExit(f"apiVersion {doc.get('apiVersion')}: expected serving.kserve.io/v1beta1")
                build(doc, "V1beta1InferenceService", doc["metadata"]["name"])
                checked += 1
    print(json.dumps({"checked": checked}))


if __name__ == "__main__":
    main()

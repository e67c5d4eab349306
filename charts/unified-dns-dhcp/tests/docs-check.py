#!/usr/bin/env python3
"""Every value the schema knows is documented in the chart README's values table (as `path`, with
`[]` for list items).

Usage: docs-check.py   (exit 1 listing what is missing)
"""
import json
import os
import sys

CHART = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
schema = json.load(open(os.path.join(CHART, "values.schema.json")))
readme = open(os.path.join(CHART, "README.md")).read()

# Sub-trees documented as a whole (their inner keys are Kubernetes' or Helm's own).
WHOLE = {"resources", "requests", "limits", "claims", "annotations", "tolerations", "affinity",
         "nodeSelector", "podAnnotations", "podLabels", "imagePullSecrets", "subjects", "global",
         "zones", "staticRecords", "reservations", "accessModes", "extraEnv", "extraVolumeMounts",
         "extraVolumes", "securityContext", "podSecurityContext", "startupProbe", "readinessProbe",
         "livenessProbe"}


def paths(node, prefix):
    props = node.get("properties")
    if props is None and node.get("type") == "array" and "properties" in node.get("items", {}):
        for p in paths(node["items"], prefix + "[]"):
            yield p
        return
    if props is None:
        yield prefix
        return
    if prefix:
        yield prefix
    for k, v in props.items():
        if k in WHOLE:
            yield f"{prefix}.{k}" if prefix else k
            continue
        yield from paths(v, f"{prefix}.{k}" if prefix else k)


missing = []
for p in paths(schema, ""):
    if p == "global":  # Helm's own
        continue
    if f"`{p}`" not in readme:
        # An object whose children are documented needs no row of its own.
        if f"`{p}." in readme or f"`{p}[]." in readme:
            continue
        missing.append(p)
for p in missing:
    print(f"not in README.md's values table: {p}")
sys.exit(1 if missing else 0)

"""The PodDisruptionBudget: at most one server pod voluntarily evicted at a time."""

from __future__ import annotations

from typing import Any

from stt_operator.builders.labels import metadata, selector_labels
from stt_operator.spec import SttServerSpec


def build_pdb(spec: SttServerSpec) -> dict[str, Any]:
    """The PDB `<name>` (policy/v1, maxUnavailable 1); the caller adds it only when replicas > 1."""
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": metadata(spec),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector_labels(spec)}}}

"""The Helm chart (helm is not installed here): its files parse as YAML once template actions are
blanked, its CRD is the one in crds/, and its ClusterRole covers every kind the operator writes."""

from __future__ import annotations

import pathlib
import re
from typing import Any

import yaml
from stt_operator.reconcile import CHILD_KINDS

REPO = pathlib.Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "stt-operator"
ACTION = re.compile(r"\{\{-?.*?-?\}\}")


def parse_template(path: pathlib.Path) -> list[dict[str, Any]]:
    """Blank every `{{ ... }}` action; drop lines that held only actions (if/with/range/toYaml)."""
    lines = []
    for line in path.read_text().splitlines():
        blanked = ACTION.sub("TEMPLATE", line)
        if blanked.strip() != "TEMPLATE" and blanked.strip() != "":
            lines.append(blanked)
    return [d for d in yaml.safe_load_all("\n".join(lines)) if d]


def test_chart_metadata_and_values_parse() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["name"] == "stt-operator"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["image"]["repository"] == "stt-fleet/stt-operator"


def test_every_template_parses_to_a_kubernetes_object() -> None:
    kinds = {}
    for path in sorted((CHART / "templates").glob("*.yaml")):
        docs = parse_template(path)
        assert len(docs) == 1, path.name
        kinds[docs[0]["kind"]] = docs[0]
    assert set(kinds) == {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment"}
    container = kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["args"][0] == "run"


def test_chart_crd_is_the_repository_crd() -> None:
    assert (CHART / "crds" / "sttservers.sttfleet.io.yaml").read_bytes() == \
        (REPO / "crds" / "sttservers.sttfleet.io.yaml").read_bytes()


def test_cluster_role_covers_every_child_kind() -> None:
    role = parse_template(CHART / "templates" / "clusterrole.yaml")[0]
    granted = {(group, resource): set(rule["verbs"]) for rule in role["rules"]
               for group in rule["apiGroups"] for resource in rule["resources"]}
    for api_version, plural in CHILD_KINDS.values():
        group = api_version.rpartition("/")[0]
        assert {"get", "list", "watch", "create", "patch", "delete"} <= granted[(group, plural)], plural
    assert {"patch"} <= granted[("sttfleet.io", "sttservers/status")]
    assert "get" in granted[("", "secrets")] and "list" in granted[("", "pods")]

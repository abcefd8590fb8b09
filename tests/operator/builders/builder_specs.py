"""Specs the builder tests share: the minimal one, the GPU sample, and a fully loaded one."""

from __future__ import annotations

import pathlib
from typing import Any

import yaml
from stt_operator.spec import SttServerSpec, parse_spec

SAMPLES = pathlib.Path(__file__).resolve().parents[3] / "crds" / "samples"
ALL_APIS = frozenset({"servicemonitors", "prometheusrules", "alertmanagerconfigs"})


def sample(name: str) -> SttServerSpec:
    return parse_spec(yaml.safe_load((SAMPLES / name).read_text()))


def make(**spec: Any) -> SttServerSpec:
    return parse_spec({"metadata": {"name": "s1", "namespace": "ns"}, "spec": {"image": "img:1", **spec}})

"""The alert tables in docs/slo.md and docs/operations.md are the rule builder's, and every alert
and recording rule the builder renders is documented with a runbook."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from stt_operator import alert_docs
from stt_operator.builders import build_prometheusrule
from stt_operator.spec import parse_spec

ROOT = Path(__file__).resolve().parents[2]


def test_committed_alert_tables_match_the_builder() -> None:
    assert alert_docs.stale_documents(ROOT) == [], "run: python -m stt_operator.alert_docs"


def test_a_drifted_table_is_noticed_and_rewritten(tmp_path: Path) -> None:
    for relative in alert_docs.DOCUMENTS:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / relative, tmp_path / relative)
    ops = tmp_path / "docs/operations.md"
    ops.write_text(ops.read_text().replace("| 10m | warning | `partialDropRatePercent` |",
                                           "| 10m | warning | `partialDropRatePercent` (0.2) |"))
    assert alert_docs.main(["--check", "--root", str(tmp_path)]) == 1
    assert alert_docs.main(["--root", str(tmp_path)]) == 0
    assert alert_docs.stale_documents(tmp_path) == []
    assert ops.read_text() == (ROOT / "docs/operations.md").read_text()


def test_a_document_without_markers_is_an_error() -> None:
    with pytest.raises(ValueError, match="no .* region"):
        alert_docs.with_table("# no markers here\n", "| table |\n", name="doc.md")


def test_every_alert_has_a_runbook_and_every_record_is_listed() -> None:
    slo = (ROOT / "docs/slo.md").read_text()
    spec = parse_spec({"metadata": {"name": "stt", "namespace": "speech"}, "spec": {"image": "img"}})
    recording, alerting = build_prometheusrule(spec)["spec"]["groups"]
    for rule in alerting["rules"]:
        assert f"\n#### {rule['alert'].lower()}\n" in slo, rule["alert"]
    for rule in recording["rules"]:
        assert f"`{rule['record']}`" in slo, rule["record"]

"""The alert tables in docs/slo.md and docs/operations.md, generated from the rule builder.

`python -m stt_operator.alert_docs` rewrites the region between the markers in each document;
`--check` only reports (exit 1) when a document differs from what the builder renders, which is
what tests/operator/test_alert_docs.py asserts. The table shows the default thresholds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Final

from stt_operator.builders.prometheusrule import AlertDefinition, alert_definitions
from stt_operator.spec import parse_spec

BEGIN: Final = "<!-- BEGIN GENERATED: alert table (python -m stt_operator.alert_docs) -->"
END: Final = "<!-- END GENERATED: alert table -->"
# each document, and where its alert names link to (the runbooks are in slo.md)
DOCUMENTS: Final = {"docs/slo.md": "", "docs/operations.md": "slo.md"}
_REPO_ROOT: Final = Path(__file__).resolve().parents[2]


def default_alerts() -> list[AlertDefinition]:
    """The alerts of an SttServer with every threshold and resource at its default."""
    return alert_definitions(parse_spec({"metadata": {"name": "stt", "namespace": "speech"},
                                         "spec": {"image": "stt-server"}}))


def alert_table(*, runbook_page: str = "") -> str:
    """The Markdown table: alert (linked to its runbook), condition, for, severity, threshold field."""
    rows = ["| alert | condition (default threshold) | for | severity | threshold field |",
            "|---|---|---|---|---|"]
    for alert in default_alerts():
        field = f"`{alert.field}`" if alert.field else "—"
        rows.append(f"| [{alert.name}]({runbook_page}#{alert.name.lower()}) | {alert.condition} | "
                    f"{alert.duration} | {alert.severity} | {field} |")
    return "\n".join(rows) + "\n"


def with_table(document: str, table: str, *, name: str) -> str:
    """`document` with the text between the markers replaced by `table`."""
    start, end = document.find(BEGIN), document.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{name}: no {BEGIN!r} ... {END!r} region")
    return document[:start + len(BEGIN)] + "\n" + table + document[end:]


def stale_documents(root: Path = _REPO_ROOT, *, write: bool = False) -> list[str]:
    """Documents whose alert table differs from the builder's (rewritten when `write`)."""
    stale = []
    for relative, runbook_page in DOCUMENTS.items():
        path = root / relative
        current = path.read_text()
        wanted = with_table(current, alert_table(runbook_page=runbook_page), name=relative)
        if wanted != current:
            stale.append(relative)
            if write:
                path.write_text(wanted)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stt_operator.alert_docs", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only report stale documents (exit 1)")
    parser.add_argument("--root", type=Path, default=_REPO_ROOT, help="repository root (default: this checkout)")
    args = parser.parse_args(argv)
    stale = stale_documents(args.root, write=not args.check)
    for relative in stale:
        print(f"{relative}: {'stale' if args.check else 'rewritten'}")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())

"""The child watches: filtered by the API server (labelSelector), and quiet in the log.

kopf's `labels=` handler filter runs in the client, after the API server sent every ConfigMap,
Service and Deployment of the cluster; `settings.watching.label_selectors` puts the selector into
the list and watch requests themselves (kopf/_cogs/clients/watching.py), so only our children come.
"""

from __future__ import annotations

import logging

import kopf
import pytest
from kopf._cogs.structs.references import Resource
from stt_operator.crd import GROUP, PLURAL, VERSION
from stt_operator.handlers import WATCHED_CHILDREN, select_children_on_the_server


def test_every_child_kind_is_watched_with_our_label_selector_and_the_sttservers_are_not_filtered() -> None:
    settings = kopf.OperatorSettings()
    select_children_on_the_server(settings)
    for group, version, plural in WATCHED_CHILDREN:
        resource = Resource(group=group, version=version, plural=plural)
        assert settings.watching.label_selectors.collect(resource) == ["app.kubernetes.io/managed-by=stt-operator"]
    for unrelated in (Resource(group=GROUP, version=VERSION, plural=PLURAL),
                      Resource(group="", version="v1", plural="pods"),
                      Resource(group="", version="v1", plural="secrets")):
        assert settings.watching.label_selectors.collect(unrelated) == []


@pytest.mark.parametrize("level, shown", [(logging.INFO, False), (logging.DEBUG, True)])
def test_a_child_event_is_logged_at_debug_only(caplog: pytest.LogCaptureFixture, level: int, shown: bool) -> None:
    select_children_on_the_server(kopf.OperatorSettings())
    kopf_objects = logging.getLogger("kopf.objects")
    with caplog.at_level(level, logger="kopf.objects"):
        kopf_objects.info("Handler 'drift-configmaps' succeeded.")
        kopf_objects.info("Handler 'reconcile_server' succeeded.")
    records = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "kopf.objects"]
    assert ("INFO", "Handler 'reconcile_server' succeeded.") in records
    assert (("DEBUG", "Handler 'drift-configmaps' succeeded.") in records) is shown
    assert ("INFO", "Handler 'drift-configmaps' succeeded.") not in records

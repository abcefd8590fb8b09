"""The dashboard's variables: datasource, namespace, sttserver (the Prometheus job), pod."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import DatasourceVariable, QueryVariable
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models.dashboard import (
    VariableModel,
    VariableOption,
    VariableRefresh,
    VariableSort,
)

from stt_operator.dashboards.panels import DATASOURCE

# Every stt-server pod exports stt_ready, so its label values list exactly the scraped servers. Queries
# are plain `label_values(...)` strings: every Grafana version reads those (newer ones migrate them).
ANCHOR = "stt_ready"


def _current(value: str | None) -> VariableOption | None:
    return None if value is None else VariableOption(selected=True, text=value, value=value)


def _query(name: str, label: str, query: str, *, current: str | None) -> QueryVariable:
    variable = (QueryVariable(name).label(label).datasource(DATASOURCE)
                .query(query)
                .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED).sort(VariableSort.ALPHABETICAL_ASC))
    selected = _current(current)
    return variable.current(selected) if selected is not None else variable


def variables(*, namespace: str | None = None, sttserver: str | None = None) -> list[Builder[VariableModel]]:
    """The four variables; `namespace` and `sttserver` preselect one SttServer (the operator's copy)."""
    pod = (QueryVariable("pod").label("pod").datasource(DATASOURCE)
           .query(f'label_values({ANCHOR}{{namespace="$namespace", job="$sttserver"}}, pod)')
           .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED).sort(VariableSort.ALPHABETICAL_ASC)
           .multi(True).include_all(True).all_value(".*")
           .current(VariableOption(selected=True, text="All", value="$__all")))
    return [
        DatasourceVariable("datasource").label("Data source").type("prometheus"),
        _query("namespace", "namespace", f"label_values({ANCHOR}, namespace)", current=namespace),
        _query("sttserver", "SttServer", f'label_values({ANCHOR}{{namespace="$namespace"}}, job)',
               current=sttserver),
        pod,
    ]

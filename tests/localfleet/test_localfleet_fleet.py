"""LocalFleet starts its processes and stops every one of them: on exit, on errors and on Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import psutil
import pytest
import yaml
from stt_operator.autoscaling.kubeapi import resource_path
from stt_localfleet.fleet import LocalFleet

# A minimal SttServer CRD (the real one is exercised by the e2e test), with the status subresource.
CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "sttservers.sttfleet.io"},
    "spec": {"group": "sttfleet.io", "scope": "Namespaced",
             "names": {"plural": "sttservers", "singular": "sttserver", "kind": "SttServer", "shortNames": ["stt"]},
             "versions": [{"name": "v1alpha1", "served": True, "storage": True, "subresources": {"status": {}},
                           "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]},
}
# The real operator is exercised by the e2e test; here a stand-in keeps this test fast.
STAND_IN_OPERATOR = [sys.executable, "-c", "import time; time.sleep(600)"]


def crds_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "crds"
    folder.mkdir()
    (folder / "sttservers.yaml").write_text(yaml.safe_dump(CRD))
    return folder


@pytest.mark.slow
async def test_fleet_serves_the_api_and_stops_everything_on_an_error(tmp_path: Path) -> None:
    pids: list[int] = []
    with pytest.raises(RuntimeError, match="boom"):
        async with LocalFleet(namespace="demo", workdir=tmp_path / "w", crds=crds_dir(tmp_path),
                              operator_cmd=STAND_IN_OPERATOR) as fleet:
            pids = [p.pid for p in fleet.processes.values()]
            assert set(fleet.processes) == {"apiserver", "kubelet", "nodeport", "operator"}
            crd = await fleet.api.get(resource_path("apiextensions.k8s.io/v1", "customresourcedefinitions",
                                                    name="sttservers.sttfleet.io"))
            assert crd["spec"]["names"]["shortNames"] == ["stt"]
            applied = await fleet.apply([{"apiVersion": "sttfleet.io/v1alpha1", "kind": "SttServer",
                                          "metadata": {"name": "x"}, "spec": {"replicas": 1}}])
            assert applied[0]["metadata"]["namespace"] == "demo"
            raise RuntimeError("boom")
    assert len(pids) == 4
    assert not [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]


SCRIPT = """
import asyncio, json, sys
from pathlib import Path
from stt_localfleet.fleet import LocalFleet
async def main():
    async with LocalFleet(namespace="demo", workdir=Path(sys.argv[1]), crds=Path(sys.argv[2]),
                          operator_cmd=[sys.executable, "-c", "import time; time.sleep(600)"]) as fleet:
        print(json.dumps([p.pid for p in fleet.processes.values()]), flush=True)
        await asyncio.sleep(600)
try:
    asyncio.run(main())
except KeyboardInterrupt:
    sys.exit(130)
"""


@pytest.mark.slow
async def test_ctrl_c_stops_every_fleet_process(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", SCRIPT, str(tmp_path / "w"),
                                                str(crds_dir(tmp_path)), stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    pids = json.loads(line)
    assert len(pids) == 4 and all(psutil.pid_exists(p) for p in pids)
    proc.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(proc.wait(), 60) == 130
    assert not [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]

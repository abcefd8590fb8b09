"""`spec.server` on the local cluster: a wrong extraConfig key becomes a Degraded condition naming it
(no child is written, so no pod crash-loops on a bad config.yaml); fixed, the settings reach the ConfigMap."""

from __future__ import annotations

import yaml
from operator_cluster import Cluster, load_sample, unplaceable


async def test_bad_extra_config_key_is_degraded_naming_it_then_reaches_the_configmap(cluster: Cluster) -> None:
    server = unplaceable(load_sample("minimal"), name="tuned")
    server["spec"]["server"] = {"logging": {"level": "DEBUG"},
                                "extraConfig": {"streaming.max_batch_sise": 4, "limits.session_ttl_sec": 600}}
    cluster.apply(server)
    degraded = await cluster.wait_condition("tuned", "Degraded", "True")
    assert degraded["reason"] == "InvalidSpec"
    assert "spec.server.extraConfig.streaming.max_batch_sise" in degraded["message"]
    assert "unknown server config key" in degraded["message"]
    await cluster.wait_for_event("tuned", "Warning", "Degraded")
    assert await cluster.get("ConfigMap", "tuned") is None
    assert await cluster.get("Deployment", "tuned") is None

    cluster.patch("SttServer", "tuned", {"spec": {"server": {"extraConfig": {"streaming.max_batch_sise": None}}}})
    await cluster.wait_condition("tuned", "Degraded", "False")
    configmap = await cluster.wait_object("ConfigMap", "tuned", what="the ConfigMap once the key is fixed")
    config = yaml.safe_load(configmap["data"]["config.yaml"])
    assert config["limits"]["session_ttl_sec"] == 600
    assert config["logging"]["level"] == "DEBUG"
    assert "max_batch_sise" not in config["streaming"]

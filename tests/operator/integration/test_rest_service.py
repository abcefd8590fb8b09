"""An SttServer's OpenAI-compatible REST API on the real cluster: the operator puts port `rest` on
the Service (a NodePort here) and the container, the pod serves it, and the official `openai`
client transcribes speech through the node port."""

from __future__ import annotations

import numpy as np
import openai
import pytest
from audio_fixtures import silence, synthesize, word_error_rate
from operator_cluster import Cluster, load_sample, wait_for

pytestmark = pytest.mark.slow
TEXT = "The weather today is sunny with a light breeze from the west."


def _wav(samples: np.ndarray) -> bytes:
    import io
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16_000)
        handle.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


async def test_rest_port_on_the_service_and_a_transcript_through_the_node_port(cluster: Cluster) -> None:
    server = load_sample("minimal")
    server["metadata"]["name"] = "stt-rest"
    server["spec"]["service"] = {"type": "NodePort"}  # node ports are cluster-wide: the API server picks them
    server["spec"]["resources"] = {"requests": {"cpu": "0.1", "memory": "256Mi"}}
    cluster.apply(server)

    service = await cluster.wait_object("Service", "stt-rest")
    rest = next(p for p in service["spec"]["ports"] if p["name"] == "rest")
    assert (rest["port"], rest["targetPort"], rest["appProtocol"]) == (8080, "rest", "http")
    deployment = await cluster.wait_object("Deployment", "stt-rest")
    ports = deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert {"name": "rest", "containerPort": 8080, "protocol": "TCP"} in ports
    await cluster.wait_condition("stt-rest", "Ready", "True", timeout=180)

    wav = _wav(np.concatenate([silence(0.5), synthesize(TEXT), silence(0.5)]))
    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{rest['nodePort']}/v1", api_key="unused",
                                max_retries=0, timeout=60)

    async def transcript() -> str | None:
        try:  # the node-port proxy learns the pod's endpoint shortly after it turns ready
            return (await client.audio.transcriptions.create(model="whisper-1", file=("s.wav", wav))).text
        except openai.APIConnectionError:
            return None

    try:
        text = await wait_for(transcript, what="a transcript through the REST node port", timeout=60)
    finally:
        await client.close()
    assert word_error_rate(TEXT, text) <= 0.15, text

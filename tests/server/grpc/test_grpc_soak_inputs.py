"""Every hostile input of the soak run gets one of its allowed answers from a real server (fake engine)."""

from __future__ import annotations

import random

import grpc
import pytest
from grpc_harness import assert_no_leaks, running_server
from stt_server.bench.soak_inputs import HOSTILE_CASES, HostileCase


@pytest.mark.parametrize("case", HOSTILE_CASES, ids=[case.name for case in HOSTILE_CASES])
async def test_hostile_case_gets_an_allowed_answer(case: HostileCase) -> None:
    async with running_server() as server, grpc.aio.insecure_channel(server.target) as channel:
        for seed in range(3):
            outcome = await case.run(channel=channel, http=f"http://127.0.0.1:{server.app.http_port}",
                                     target=server.target, rng=random.Random(seed))
            assert outcome.answer in case.allowed, (outcome.answer, outcome.detail)
        await assert_no_leaks(server)

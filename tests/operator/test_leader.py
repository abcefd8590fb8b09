"""The Lease rule of leader.py: who may take the Lease, and when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stt_operator.leader import can_take, micro_time

NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


def lease(holder: str | None, renewed_ago: float, duration: int = 15) -> dict[str, object]:
    return {"holderIdentity": holder, "leaseDurationSeconds": duration,
            "renewTime": micro_time(NOW - timedelta(seconds=renewed_ago))}


def test_a_free_or_own_lease_can_be_taken() -> None:
    assert can_take(lease(None, 1), identity="me", now=NOW)
    assert can_take(lease("me", 1), identity="me", now=NOW)


def test_a_live_holders_lease_cannot_be_taken_until_it_expires() -> None:
    assert not can_take(lease("other", 14), identity="me", now=NOW)
    assert can_take(lease("other", 16), identity="me", now=NOW)
    assert can_take(lease("other", 2, duration=1), identity="me", now=NOW)


def test_micro_time_is_what_the_api_server_stores() -> None:
    assert micro_time(NOW) == "2025-01-01T12:00:00.000000Z"

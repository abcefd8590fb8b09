"""Bearer-token protection: which endpoints refuse, what minimal /health shows, token files."""

from __future__ import annotations

from pathlib import Path

import pytest
from control_harness import FakeView, StartPlane

PROTECTED = ("/metrics", "/metrics.json", "/system", "/info", "/health")
TOKEN = "s3cret-token"


@pytest.mark.parametrize("path", PROTECTED)
async def test_protected_endpoints_refuse_without_token(start_plane: StartPlane, path: str) -> None:
    plane = await start_plane(auth={"control_token": TOKEN})
    status, body = await plane.get(path)
    assert status == 401
    assert body["error"] == "unauthorized" and TOKEN not in str(body)
    wrong_status, _ = await plane.get(path, token="not-the-token")
    assert wrong_status == 401
    good_status, _ = await plane.get(path, token=TOKEN)
    assert good_status == 200


async def test_probes_stay_public_with_a_token(start_plane: StartPlane) -> None:
    plane = await start_plane(auth={"control_token": TOKEN})
    assert await plane.get("/health/live") == (200, {"status": "alive"})
    assert await plane.get("/health/ready") == (200, {"status": "ready"})


async def test_minimal_public_health_shows_only_the_verdict(start_plane: StartPlane) -> None:
    plane = await start_plane(auth={"control_token": TOKEN, "public_health": "minimal"})
    assert await plane.get("/health") == (200, {"status": "healthy"})
    status, detailed = await plane.get("/health", token=TOKEN)
    assert status == 200 and "checks" in detailed and "model" in detailed
    # The rest stays protected.
    assert (await plane.get("/metrics"))[0] == 401


async def test_token_from_file(start_plane: StartPlane, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    plane = await start_plane(auth={"control_token_file": str(token_file)})
    assert (await plane.get("/metrics.json"))[0] == 401
    assert (await plane.get("/metrics.json", token=TOKEN))[0] == 200


async def test_empty_token_file_refuses_to_start(start_plane: StartPlane, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("\n")
    with pytest.raises(ValueError, match="control_token_file"):
        await start_plane(auth={"control_token_file": str(token_file)})


async def test_without_a_token_everything_is_open(start_plane: StartPlane) -> None:
    plane = await start_plane()
    for path in PROTECTED:
        assert (await plane.get(path))[0] == 200, path


async def test_unknown_path_and_wrong_method_answer_json(start_plane: StartPlane) -> None:
    plane = await start_plane()
    status, body = await plane.get("/nope")
    assert status == 404 and body["error"] == "not_found" and "/nope" in body["message"]
    async with plane.session.post(plane.url + "/metrics") as response:
        assert response.status == 405
        assert (await response.json())["error"] == "method_not_allowed"


class _BrokenView(FakeView):
    def health(self):  # type: ignore[override]
        raise RuntimeError("view exploded")


async def test_a_failing_view_gives_500_json_and_the_plane_keeps_serving(start_plane: StartPlane) -> None:
    plane = await start_plane(view=_BrokenView())
    status, body = await plane.get("/health")
    assert status == 500 and body["error"] == "internal_error" and "exploded" not in str(body)
    assert (await plane.get("/info"))[0] == 200
    assert (await plane.get("/health/live"))[0] == 200

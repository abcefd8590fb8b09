"""The mount-namespace launcher: tiny programs read what their mounts show them (needs root).

Every mount target lies under the test's tmp_path, so a target the launcher has to create leaves
its empty directory there, not on the host's /.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path

import pytest
from stt_localfleet.launcher import LaunchSpec, Mount, hidden_paths, mount_order, spawn
from stt_localfleet.launcherrors import LaunchError

pytestmark = pytest.mark.skipif(sys.platform != "linux" or os.geteuid() != 0,
                                reason="mount namespaces need Linux and root (CAP_SYS_ADMIN)")
PATH = {"PATH": "/usr/bin:/bin"}


async def run(spec: LaunchSpec) -> tuple[int, str]:
    proc = await spawn(spec, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output = await proc.stdout.read() if proc.stdout else b""
    return await proc.wait(), output.decode()


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    source = tmp_path / "volume"
    source.mkdir()
    (source / "config.yaml").write_text("limits: {max_sessions: 3}\n")
    return source


async def test_a_volume_appears_at_its_mount_path_only_inside(tmp_path: Path, volume: Path) -> None:
    target = tmp_path / "view" / "etc" / "stt"
    code, out = await run(LaunchSpec(argv=("cat", f"{target}/config.yaml"), env=PATH,
                                     mounts=(Mount(volume, str(target)),)))
    assert (code, out) == (0, "limits: {max_sessions: 3}\n")
    assert target.is_dir() and not any(target.iterdir()), "the host keeps only the empty mount point"


async def test_read_only_mounts_refuse_writes(tmp_path: Path, volume: Path) -> None:
    target = tmp_path / "ro"
    code, out = await run(LaunchSpec(argv=("sh", "-c", f"echo x > {target}/new"), env=PATH,
                                     mounts=(Mount(volume, str(target), read_only=True),)))
    assert code != 0 and "Read-only file system" in out
    assert not (volume / "new").exists()


async def test_a_file_mount_and_the_working_directory(tmp_path: Path, volume: Path) -> None:
    target = tmp_path / "app" / "settings.yaml"
    code, out = await run(LaunchSpec(argv=("sh", "-c", "pwd; cat settings.yaml"), env=PATH, cwd=str(target.parent),
                                     mounts=(Mount(volume / "config.yaml", str(target)),)))
    assert (code, out) == (0, f"{target.parent}\nlimits: {{max_sessions: 3}}\n")


async def test_a_hidden_image_path_is_bound_back(tmp_path: Path) -> None:
    # An emptyDir over the folder that holds the "image" (as /tmp over a checkout under /tmp).
    image = tmp_path / "outer" / "image"
    image.mkdir(parents=True)
    (image / "program.txt").write_text("from the image\n")
    empty = tmp_path / "emptydir"
    empty.mkdir()
    mounts = (Mount(empty, str(tmp_path / "outer")),)
    assert hidden_paths([image, tmp_path / "elsewhere"], [str(tmp_path / "outer")]) == (image,)
    code, out = await run(LaunchSpec(argv=("cat", f"{image}/program.txt"), env=PATH, mounts=mounts))
    assert code != 0, "without re-exposing, the mount hides the image"
    code, out = await run(LaunchSpec(argv=("cat", f"{image}/program.txt"), env=PATH, mounts=mounts,
                                     reexpose=(image,)))
    assert (code, out) == (0, "from the image\n")
    assert (empty / "image").is_dir(), "the re-exposed path's mount point is made inside the emptyDir"


async def test_the_venv_runs_under_an_empty_dir_over_its_parent(tmp_path: Path) -> None:
    # What a pod with an emptyDir at /tmp does to a checkout under /tmp, with this test's interpreter.
    prefix = Path(os.path.realpath(sys.prefix))
    empty = tmp_path / "emptydir"
    empty.mkdir()
    mounts = (Mount(empty, str(prefix.parent)),)
    code, out = await run(LaunchSpec(argv=(sys.executable, "-c", "import json; print('ok')"), env=PATH,
                                     mounts=mounts, reexpose=hidden_paths([prefix, Path(sys.base_prefix)],
                                                                          [str(prefix.parent)])))
    assert (code, out) == (0, "ok\n")


async def test_join_runs_inside_a_running_container(tmp_path: Path, volume: Path) -> None:
    target = tmp_path / "joined"
    holder = await spawn(LaunchSpec(argv=("sleep", "30"), env=PATH, mounts=(Mount(volume, str(target)),)),
                         stdout=None, stderr=None)
    try:
        code, out = await run(LaunchSpec(argv=("cat", f"{target}/config.yaml"), env=PATH, join_pid=holder.pid))
        assert (code, out) == (0, "limits: {max_sessions: 3}\n")
    finally:
        holder.kill()
        await holder.wait()


async def test_an_unknown_program_is_a_start_error() -> None:
    with pytest.raises(LaunchError) as err:
        await run(LaunchSpec(argv=("no-such-program-xyz",), env=PATH))
    assert err.value.reason == "StartError"
    assert 'exec: "no-such-program-xyz"' in err.value.message


async def test_a_missing_mount_source_is_a_run_container_error(tmp_path: Path) -> None:
    with pytest.raises(LaunchError) as err:
        await run(LaunchSpec(argv=("true",), env=PATH, mounts=(Mount(tmp_path / "absent", str(tmp_path / "t")),)))
    assert err.value.reason == "RunContainerError" and "absent" in err.value.message


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
async def test_without_cap_sys_admin_the_reason_names_root(tmp_path: Path) -> None:
    # The launcher run without CAP_SYS_ADMIN (dropped from the bounding set), as a non-root kubelet would be.
    from stt_localfleet.launcher import launcher_argv

    read_end, write_end = os.pipe()
    argv = ["setpriv", "--bounding-set=-sys_admin", "--inh-caps=-sys_admin",
            *launcher_argv(LaunchSpec(argv=("true",), env=PATH), status_fd=write_end, parent=os.getpid())]
    proc = await asyncio.create_subprocess_exec(*argv, pass_fds=(write_end,), env=PATH)
    os.close(write_end)
    await proc.wait()
    with os.fdopen(read_end, "rb") as verdict:
        message = verdict.read().decode()
    assert "needs root (CAP_SYS_ADMIN)" in message and "RunContainerError" in message


def test_parents_are_mounted_before_children() -> None:
    mounts = [Mount(Path("/a"), "/tmp/x/y"), Mount(Path("/b"), "/tmp"), Mount(Path("/c"), "/etc/stt")]
    assert [m.target for m in mount_order(mounts)] == ["/tmp", "/etc/stt", "/tmp/x/y"]

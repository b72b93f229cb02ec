"""``cityscapes-seg demo --out`` an existing folder: the previous run's outputs go before anything starts, so a
run that fails part-way never leaves an older run's results looking like its own; other files stay."""

import pytest

pytestmark = pytest.mark.ros  # run again on every tested ROS 2 distro (.ci/run)

pytest.importorskip("rclpy")
pytest.importorskip("cityscapes_seg_ros.msg", reason="messages not built (scripts/build_msgs.sh)")

from cityscapes_seg_ros.cli import demo as demo_cli  # noqa: E402
from cityscapes_seg_ros.cli.main import main  # noqa: E402


def previous_run(out):
    (out / "overlay").mkdir(parents=True)
    for name in demo_cli.DEMO_OUTPUTS:
        (out / name).write_text("from the previous run")
    (out / "overlay" / "frame_000.png").write_bytes(b"old")
    (out / "notes.txt").write_text("the user's own file")
    (out / "overlay" / "mine.txt").write_text("the user's own file too")


def test_a_failing_run_leaves_no_outputs_of_the_previous_run(tmp_path, monkeypatch, capsys):
    out = tmp_path / "demo_out"
    previous_run(out)

    def node_fails(*args):
        raise RuntimeError("the node exited with status 2")

    monkeypatch.setattr(demo_cli, "run_session", node_fails)
    assert main(["demo", "--checkpoint", "none", "--device", "cpu", "--out", str(out)]) == 2
    assert "the node exited" in capsys.readouterr().err
    left = sorted(str(path.relative_to(out)) for path in out.rglob("*"))
    assert left == ["notes.txt", "overlay", "overlay/mine.txt"]


def test_an_overlay_folder_of_demo_files_only_is_removed(tmp_path):
    out = tmp_path / "demo_out"
    previous_run(out)
    (out / "overlay" / "mine.txt").unlink()
    demo_cli.clear_previous_outputs(out)
    assert sorted(path.name for path in out.iterdir()) == ["notes.txt"]

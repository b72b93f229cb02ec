"""A non-editable install (`pip install .`, colcon) holds the package's parameter file where `cityscapes-seg demo` and
`ros2 launch` look for it: `<prefix>/share/cityscapes_seg_ros/config/`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from cityscapes_seg_ros.cli import demo

ROOT = Path(__file__).resolve().parents[2]
# What `pip install .` needs of the checkout (copied, so that the build leaves nothing in the source tree).
BUILD_INPUTS = (
    "setup.py",
    "pyproject.toml",
    "README.md",
    "package.xml",
    "cityscapes_seg_ros",
    "config",
    "launch",
    "kernels",
    "resource",
)
SHARE = Path("share") / "cityscapes_seg_ros"


def test_a_source_checkout_uses_its_own_config_folder():
    assert demo.params_file() == ROOT / "config" / demo.PARAMS_FILE_NAME


def own_install_present() -> bool:
    """Whether this interpreter's environment has the package installed (editable or not)."""
    show = [sys.executable, "-m", "pip", "show", "--quiet", "cityscapes_seg_ros"]
    return subprocess.run(show, capture_output=True, timeout=120).returncode == 0


def test_pip_install_puts_config_and_launch_into_share_and_demo_finds_the_params_file(tmp_path):
    source, prefix = tmp_path / "source", tmp_path / "prefix"
    source.mkdir()
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
        else:
            shutil.copy2(ROOT / name, source / name)
    env = {**os.environ, "CITYSCAPES_SEG_COMPILED_OPS": "off"}  # no compiler run: the layout is what is tested
    # --ignore-installed: without it pip uninstalls this interpreter's own install of the package first.
    install = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--no-index",
        "--no-build-isolation",
        "--ignore-installed",
        "--prefix",
        str(prefix),
        str(source),
    ]
    installed_here = own_install_present()
    result = subprocess.run(install, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert own_install_present() == installed_here, "installing elsewhere removed this environment's install"
    for name in ("config/cityscapes_seg.yaml", "config/cityscapes_seg.rviz", "launch/segmentation.launch.py"):
        assert (prefix / SHARE / name).is_file(), f"{name} is not installed into {SHARE}"

    site_packages = Path(sysconfig.get_path("purelib", vars={"base": str(prefix), "platbase": str(prefix)}))
    code = "from cityscapes_seg_ros.cli import demo; print(demo.__file__); print(demo.params_file())"
    env = {**os.environ, "PYTHONPATH": str(site_packages)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    module_file, found = result.stdout.split()
    assert Path(module_file).is_relative_to(site_packages), "the installed copy was not the one imported"
    assert Path(found) == prefix / SHARE / "config" / demo.PARAMS_FILE_NAME


def test_a_colcon_install_is_found_from_the_package_location(tmp_path):
    install = tmp_path / "install" / "cityscapes_seg_ros"
    package_dir = install / "lib" / "python3.12" / "site-packages" / "cityscapes_seg_ros"
    package_dir.mkdir(parents=True)
    params = install / SHARE / "config" / demo.PARAMS_FILE_NAME
    params.parent.mkdir(parents=True)
    params.write_text("{}\n")
    assert demo.params_file(package_dir) == params


def test_without_a_params_file_in_reach_none_is_found(tmp_path):
    package_dir = tmp_path / "lib" / "site-packages" / "cityscapes_seg_ros"
    package_dir.mkdir(parents=True)
    found = demo.params_file(package_dir)
    # Only this interpreter's own prefix may still hold one (an install of the package into it).
    assert found is None or found == Path(sys.prefix) / SHARE / "config" / demo.PARAMS_FILE_NAME

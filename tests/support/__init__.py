"""What the tests share besides conftest.py's fixtures: stand-ins for the official code and data, ROS probes and
the bag and DCNv3 helpers. Importable as ``support.X`` from every test folder (tests/ is on pytest's path)."""

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent

"""Python source that makes any later ``import torch`` in a process fail: prepend it to a ``python -c`` script to
show that what the script does needs no torch."""

BLOCK_TORCH = """
import importlib.abc
import sys


class _NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"this process must not import {name}")


sys.meta_path.insert(0, _NoTorch())
"""

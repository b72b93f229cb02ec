"""Offline Cityscapes evaluation with the official benchmark's numbers: scoring, file matching, reports, runs.

``Accumulator`` (confusion matrix and instance-weighted counts, ``result()`` in the JSON schema) and
``score_files`` are the public entry points; ``cityscapes-seg-eval`` is the command line.
"""

from .scoring import Accumulator, ScorePair, accumulate_files, score_files

__all__ = ["Accumulator", "ScorePair", "accumulate_files", "score_files"]

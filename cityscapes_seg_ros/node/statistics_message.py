"""One frame's ``cityscapes_seg_ros/ClassStatistics`` (the node's ``segmentation/statistics`` topic)."""

from __future__ import annotations

from typing import Any, Optional, Sequence

from ..msg import ClassStat, ClassStatistics
from .pipeline import FrameResult
from .statistics import class_stats, ignored_count


def statistics_message(
    header: Any, model: str, size: Sequence[int], result: FrameResult, class_ids: Optional[Sequence[int]] = None
) -> ClassStatistics:
    """The classes of ``class_ids`` (all 19 when None) in train-id order, the ignored pixels and the frame's
    timings; ``size`` is the image's (height, width)."""
    msg = ClassStatistics(header=header, model=model, height=int(size[0]), width=int(size[1]))
    msg.classes = [
        ClassStat(
            train_id=s.train_id,
            name=s.name,
            pixel_count=s.pixel_count,
            fraction=s.fraction,
            mean_confidence=s.mean_confidence,
        )
        for s in class_stats(result.pixel_counts, result.confidence_sums, class_ids)
    ]
    msg.ignored_pixel_count = ignored_count(result.pixel_counts)
    msg.preprocess_ms = result.timings_ms.get("preprocess", 0.0)
    msg.inference_ms = result.timings_ms.get("inference", 0.0)
    msg.postprocess_ms = result.timings_ms.get("postprocess", 0.0)
    return msg

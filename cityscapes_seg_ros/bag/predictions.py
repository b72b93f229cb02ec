"""Predicted masks keyed by header stamp, kept PNG-compressed in memory (and on disk when asked)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Dict, Iterator, Optional

import cv2
import numpy as np

from ..image_io import write_png


class PredictionStore:
    """stamp ns -> train-id mask; a 2048x1024 mask costs tens of KB instead of 2 MB."""

    def __init__(self, save_dir: Optional[Path] = None) -> None:
        self._masks: Dict[int, bytes] = {}
        self._lock = threading.Lock()
        self.save_dir = Path(save_dir) if save_dir else None
        self.duplicates = 0

    def put(self, stamp_ns: int, train_ids: np.ndarray) -> bool:
        """Keep the first mask of a stamp; False (and counted) for a repeated one."""
        ok, encoded = cv2.imencode(".png", np.ascontiguousarray(train_ids, dtype=np.uint8))
        if not ok:
            raise ValueError(f"cannot encode the mask of stamp {stamp_ns}")
        with self._lock:
            if stamp_ns in self._masks:
                self.duplicates += 1
                return False
            self._masks[stamp_ns] = encoded.tobytes()
        if self.save_dir is not None:
            write_png(self.save_dir / f"{stamp_ns}.png", train_ids)
        return True

    def get(self, stamp_ns: int) -> Optional[np.ndarray]:
        with self._lock:
            encoded = self._masks.get(stamp_ns)
        if encoded is None:
            return None
        return cv2.imdecode(np.frombuffer(encoded, dtype=np.uint8), cv2.IMREAD_UNCHANGED)

    def __contains__(self, stamp_ns: int) -> bool:
        with self._lock:
            return stamp_ns in self._masks

    def __len__(self) -> int:
        with self._lock:
            return len(self._masks)

    def stamps(self) -> Iterator[int]:
        with self._lock:
            return iter(sorted(self._masks))

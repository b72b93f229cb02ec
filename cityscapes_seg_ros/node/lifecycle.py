"""cityscapes_seg_node as a managed (lifecycle) node: ``python -m cityscapes_seg_ros.node --lifecycle``.

It starts unconfigured with its parameters declared. configure: loads the model and creates the publishers;
activate: publishes the class map, subscribes the cameras and starts the worker; deactivate: unsubscribes and
stops the worker (a frame being segmented is finished and published first); cleanup: destroys the publishers
and frees the model (and its GPU memory). Shutdown works from every state; an error in a transition leaves the
node unconfigured. Everything else is the plain node's code (``node.SegmentationCore``).
"""

from __future__ import annotations

from typing import Any

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from ..segmenter import CheckpointError
from .node import NODE_NAME, PredictorLoader, SegmentationCore, load_predictor


class SegmentationLifecycleNode(SegmentationCore, LifecycleNode):
    """``load`` builds the predictor on configure (tests pass their own; default: the parameters' model)."""

    def __init__(self, load: PredictorLoader = load_predictor, **node_kwargs: Any) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        self._load = load
        self.init_segmentation()

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.load_model(self._load(self.settings))
        except (CheckpointError, ValueError, RuntimeError, OSError) as exc:
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        self.create_cameras()
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.start_serving()
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop_serving()
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f"a transition from {state.label} raised; releasing everything (unconfigured)")
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        self.stop_serving()
        self.destroy_cameras()
        self.free_model()

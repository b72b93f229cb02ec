"""Driving a segmentation node process from Python (the bag tools' live evaluation and ``cityscapes-seg demo``): starting
and stopping it, a private rclpy context, interrupts, with failures of its own (``HarnessError``)."""

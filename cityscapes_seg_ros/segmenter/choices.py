"""The values the model options can take, shared by the options (``options``) and the inference code."""

PRECISIONS = ("fp32", "tf32", "fp16", "bf16")  # tf32: fp32 with TF32 tensor cores on CUDA (fp32 on CPU)
MODES = ("whole", "slide")
TTA_CHOICES = ("none", "flip", "ms", "ms-flip")
DCNV3_BACKENDS = ("auto", "torch")
DEFAULT_INFERENCE_SIZE = (2048, 1024)  # (long edge, short edge) bound of the official keep-ratio resize

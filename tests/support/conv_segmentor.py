"""A small convolutional segmentor without DCNv3: logits at a quarter of the input size, like the real models.

For the GPU tests of CUDA graphs and batching, which must not depend on whether the DCNv3 op can be captured.
"""

import torch
from torch import nn


class ConvSegmentor(nn.Module):
    def __init__(self, num_classes: int = 19, seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):  # seeded weights, the caller's random stream untouched
            torch.manual_seed(seed)
            self.layers = nn.Sequential(
                nn.Conv2d(3, 16, 3, stride=2, padding=1),
                nn.BatchNorm2d(16),
                nn.ReLU(),
                nn.Conv2d(16, 32, 3, stride=2, padding=1),
                nn.GroupNorm(4, 32),
                nn.GELU(),
                nn.Conv2d(32, num_classes, 1),
            )
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

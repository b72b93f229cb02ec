"""DCNv3 (deformable convolution v3): the geometry record, the pure-PyTorch reference, the compiled kernels, the
``torch.library`` operator, the backend choice and the ``nn.Module``."""

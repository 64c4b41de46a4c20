"""ImageNet-100 engine: data, ResNet-18 + the toy lab's method modules with ImageNet-scale heads, DDP training."""

"""ImageNet channel statistics (RGB, [0, 1] pixels) used by torchvision's pretrained weights.

One definition for the data transforms and the overlays, in a module that imports nothing.
"""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

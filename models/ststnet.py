"""STSTNet (Liong et al., 2019): shallow triple-stream network on 28x28 flow images."""
from __future__ import annotations

import torch
from torch import nn

from models import MODELS
from models.base import TorchClassifier


class _STSTNet(nn.Module):
    """The three streams (3, 5, 8 channels of 3x3 conv, padding 2, each followed
    by ReLU, BatchNorm, maxpool 3/3 and dropout 0.5, then concatenated) are run
    as one 16-channel convolution: every op after the conv is per-channel, so
    the function, the parameter count and the default initialisation (same
    fan-in) are those of the published network, with a third of the kernel
    launches. ``tests/test_models.py`` checks the equivalence stream by stream.
    Then avgpool 2 and a linear layer (400 -> classes at 28x28 input)."""

    STREAMS = (3, 5, 8)

    def __init__(self, in_channels: int, n_classes: int, in_hw: tuple[int, int]):
        super().__init__()
        width = sum(self.STREAMS)
        self.conv = nn.Conv2d(in_channels, width, kernel_size=3, padding=2)
        self.bn = nn.BatchNorm2d(width)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=3, padding=1)
        self.drop = nn.Dropout(0.5)
        self.avg = nn.AvgPool2d(kernel_size=2, stride=2)
        with torch.no_grad():
            n_feat = self._features(torch.zeros(1, in_channels, *in_hw)).shape[1]
        self.fc = nn.Linear(n_feat, n_classes)

    def _features(self, x):
        x = self.drop(self.pool(self.bn(torch.relu(self.conv(x)))))
        return self.avg(x).flatten(1)

    def forward(self, x):
        return self.fc(self._features(x))


@MODELS.register("ststnet")
class STSTNet(TorchClassifier):
    """Published hyperparameters: Adam lr 5e-5, batch 256, 800 epochs; inputs
    fed as 0..255 floats in the order they were stored (cv2: strain, v, u).
    ``batch_order="by-class"`` reproduces the public script's unshuffled,
    class-grouped mini-batches (see ``TorchClassifier._batches``)."""

    accepts = frozenset({"flow_image", "image"})

    def __init__(self, epochs: int = 800, lr: float = 5e-5, batch_size: int = 256,
                 weight_decay: float = 0.0, optimizer: str = "adam", loss: str = "ce",
                 seed: int = 0, device: str = "cpu", batch_order: str = "shuffle"):
        super().__init__(epochs, lr, batch_size, weight_decay, optimizer, loss, seed, device)
        self.batch_order = batch_order

    def build(self, in_shape, n_classes):
        return _STSTNet(in_shape[0], n_classes, tuple(in_shape[1:]))

    def stacked_network(self, nets, in_shape):
        """The fold models as one network, for fold-parallel training (models/fold_parallel.py)."""
        from models.fold_parallel import StackedSTSTNet

        return StackedSTSTNet(nets, in_shape)

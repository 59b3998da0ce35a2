"""Fold-parallel training: the K fold models of a LOSO protocol trained as one stacked model.

Every fold keeps its own initial weights, its own mini-batch stream and its own
dropout stream, drawn exactly as ``TorchClassifier.fit`` draws them for that
fold alone; the folds' parameters are concatenated along the channel axis and
run as grouped convolutions, so one step of the stacked model is one step of
each fold model. A fold's batch holds only its own training samples (the test
subject never enters it); batches shorter than the longest one at that step
are padded, and the padding is masked out of BatchNorm's statistics and of the
loss. Adam and weight decay act elementwise, so one optimizer over the stacked
parameters is K independent optimizers. The result equals sequential training
up to floating-point summation order (``tests/test_fold_parallel.py``).

What it needs, checked by ``unsupported``: a model that implements
``stacked_network`` (STSTNet today), ``fixed`` selection, the plain
cross-entropy loss, and the same number of mini-batches per epoch in every fold
(true for LOSO when the batch size exceeds the largest test subject's share, or
is below the smallest training set's). Anything else falls back to sequential
training, and the run folder records which path ran and why.

Where it pays: on a GPU, one launch per layer for all folds instead of K
launches of tiny kernels. On a CPU the work is the same memory-bound
arithmetic either way; ``python -m benchmark perf`` measures both.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from benchmark.core.device import resolve_device
from models.base import TorchClassifier, compact


def unsupported(model, selection: str, trains: list[np.ndarray], y: np.ndarray) -> str | None:
    """Why these folds cannot be trained stacked (None: they can)."""
    if not isinstance(model, TorchClassifier) or not hasattr(model, "stacked_network"):
        return f"model {type(model).__name__} has no stacked implementation"
    if selection != "fixed":
        return f"selection {selection!r} scores every fold every epoch; only 'fixed' is stacked"
    if model.loss != "ce":
        return f"loss {model.loss!r}: only plain cross-entropy is stacked"
    if model.optimizer not in ("adam", "adamw", "sgd"):
        return f"optimizer {model.optimizer!r}"
    n_batches = {-(-len(t) // model.batch_size) for t in trains}
    if len(n_batches) > 1:
        return (f"folds have different numbers of mini-batches per epoch ({sorted(n_batches)}) with "
                f"batch size {model.batch_size}")
    if np.asarray(y).ndim != 1:
        return "labels are not one per sample"
    return None


class _FoldStream:
    """One fold's mini-batches and dropout noise, drawn as its sequential fit draws them."""

    def __init__(self, model: TorchClassifier, y_train: torch.Tensor, rng_state: torch.Tensor):
        self.model, self.y = model, y_train
        self.batch_gen = torch.Generator().manual_seed(model.seed)  # as in TorchClassifier.fit
        self.noise_gen = torch.Generator()
        self.noise_gen.set_state(rng_state)  # the global RNG right after the fold's net was built

    def epoch(self) -> tuple[torch.Tensor, ...]:
        return self.model._batches(self.y, self.batch_gen)

    def noise(self, shape: tuple[int, ...], p: float) -> torch.Tensor:
        """nn.Dropout's mask for this fold: same kernel, same memory layout, same generator."""
        if p == 0:
            return torch.ones(shape).contiguous(memory_format=torch.channels_last)
        mask = torch.empty(shape).contiguous(memory_format=torch.channels_last)
        return mask.bernoulli_(1 - p, generator=self.noise_gen).div_(1 - p)


def fit_folds(template: TorchClassifier, X: np.ndarray, y: np.ndarray, trains: list[np.ndarray],
              seeds: list[int], n_classes: int) -> list[TorchClassifier]:
    """Train one clone of ``template`` per (train indices, seed), stacked; returns the fitted clones."""
    from sklearn.base import clone

    dev = resolve_device(template.device)
    Xt = torch.as_tensor(compact(np.asarray(X)), device=dev)
    yt = torch.as_tensor(np.asarray(y), dtype=torch.long, device=dev)
    models, nets, streams = [], [], []
    for train, seed in zip(trains, seeds):
        m = clone(template).set_params(seed=seed)
        torch.manual_seed(seed)  # the same draws as m.fit: seed, then build
        nets.append(m.build(tuple(Xt.shape[1:]), n_classes))
        train_t = torch.as_tensor(train, device=dev)
        streams.append((train_t, _FoldStream(m, yt[train_t], torch.get_rng_state())))
        models.append(m)
    stacked = template.stacked_network(nets, tuple(Xt.shape[1:])).to(dev)
    opt = template._optimizer(stacked.parameters())
    for _ in range(template.epochs):
        _epoch(stacked, opt, Xt, yt, streams)
    for m, net in zip(models, stacked.unstack(nets)):
        m.net_, m.weights_source_, m.best_epoch_, m.history_ = net, "scratch", m.epochs, []
    return models


def _epoch(stacked, opt, Xt, yt, streams) -> None:
    per_fold = [[train[b] for b in stream.epoch()] for train, stream in streams]
    for step in range(len(per_fold[0])):
        idx = [batches[step] for batches in per_fold]
        sizes = torch.tensor([len(i) for i in idx])
        width = int(sizes.max())
        # Pad short batches with their own first sample; the mask removes it from BN and loss.
        padded = torch.stack([torch.cat([i, i[:1].expand(width - len(i))]) for i in idx])  # (K, B)
        valid = torch.arange(width)[None, :] < sizes[:, None]  # (K, B)
        x = Xt[padded.T.reshape(-1).to(Xt.device)].float()  # (B*K, C, H, W), fold-minor
        cuda = x.device.type == "cuda"
        # On the CPU each fold's dropout mask comes from its own stream (exactly the sequential
        # masks); on CUDA, where sequential training draws from the device's RNG anyway, one
        # mask is drawn on the device instead of copying K masks from the host every step.
        noise = None if cuda else [stream.noise((len(i), *stacked.noise_shape), stacked.p)
                                   for i, (_, stream) in zip(idx, streams)]
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):  # as TorchClassifier.fit
            logits = stacked(x, valid.T.to(x.device), sizes.to(x.device), noise)  # (B, K, classes)
        logits = logits.float()
        target = yt[padded.T.to(yt.device)]  # (B, K)
        per = F.cross_entropy(logits.permute(0, 2, 1), target, reduction="none")  # (B, K)
        loss = (per * valid.T.to(per.device)).sum(0) / sizes.to(per.device)
        loss.sum().backward()  # folds share no parameter: each gets its own loss's gradient
        opt.step()


class StackedSTSTNet(nn.Module):
    """K ``_STSTNet`` folds as one network: grouped 16-channel convolutions,
    per-fold (masked) BatchNorm statistics, per-fold linear heads."""

    def __init__(self, nets: list[nn.Module], in_shape: tuple[int, ...]):
        super().__init__()
        first = nets[0]
        self.k, self.width = len(nets), first.conv.out_channels
        self.in_channels = first.conv.in_channels
        self.p, self.eps, self.momentum = first.drop.p, first.bn.eps, first.bn.momentum
        cat = lambda name: nn.Parameter(torch.cat([n.get_parameter(name).detach() for n in nets]).clone())
        self.conv_w, self.conv_b = cat("conv.weight"), cat("conv.bias")
        self.bn_w, self.bn_b = cat("bn.weight"), cat("bn.bias")
        self.register_buffer("running_mean", torch.cat([n.bn.running_mean for n in nets]).clone())
        self.register_buffer("running_var", torch.cat([n.bn.running_var for n in nets]).clone())
        self.fc_w = nn.Parameter(torch.stack([n.fc.weight.detach() for n in nets]).clone())
        self.fc_b = nn.Parameter(torch.stack([n.fc.bias.detach() for n in nets]).clone())
        with torch.no_grad():
            h = first.pool(first.conv(torch.zeros(1, *in_shape)))
        self.noise_shape = tuple(h.shape[1:])  # dropout acts after the max-pool
        self.steps = 0

    def forward(self, x, valid, sizes, noise):
        """x (B*K, C, H, W) fold-minor; valid (B, K) bool; sizes (K,); noise: K dropout masks."""
        k = self.k
        b = x.shape[0] // k
        self.steps += 1
        x = x.reshape(b, k * self.in_channels, *x.shape[2:]).contiguous(memory_format=torch.channels_last)
        h = torch.relu(F.conv2d(x, self.conv_w, self.conv_b, padding=2, groups=k))
        h = self._batch_norm(h, valid, sizes)
        h = F.max_pool2d(h, kernel_size=3, stride=3, padding=1)
        h = h * (self._noise(noise, b, h) if noise is not None
                 else torch.empty_like(h).bernoulli_(1 - self.p).div_(1 - self.p))
        h = F.avg_pool2d(h, kernel_size=2, stride=2)
        feat = h.reshape(b, k, -1)  # per fold: (channel, y, x) order, as nn.Flatten gives
        return torch.einsum("bkf,kof->bko", feat, self.fc_w) + self.fc_b

    def _noise(self, noise, b, h):
        """(B, K*w, h, w) mask from the K folds' masks, padded rows set to 1 (they are masked anyway)."""
        full = torch.ones(b, self.k, *self.noise_shape, device=h.device)
        for j, m in enumerate(noise):
            full[: len(m), j] = m.to(h.device)
        return full.reshape(h.shape).contiguous(memory_format=torch.channels_last)

    def _batch_norm(self, h, valid, sizes):
        """Training-mode BatchNorm per fold over its own batch only (as nn.BatchNorm2d would)."""
        if bool((sizes == sizes[0]).all()) and sizes[0] == h.shape[0]:
            return F.batch_norm(h, self.running_mean, self.running_var, self.bn_w, self.bn_b,
                                training=True, momentum=self.momentum, eps=self.eps)
        w = self.width
        h = h.float()  # statistics in float32 also under autocast
        m = valid.repeat_interleave(w, dim=1).to(h.dtype)[:, :, None, None]  # (B, K*w, 1, 1)
        n = (sizes.repeat_interleave(w) * h.shape[2] * h.shape[3]).to(h.dtype)  # values per channel
        mean = (h * m).sum((0, 2, 3)) / n
        diff = h - mean[None, :, None, None]
        var = (diff.square() * m).sum((0, 2, 3)) / n
        with torch.no_grad():  # nn.BatchNorm2d's update, with the unbiased variance
            self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean)
            self.running_var.mul_(1 - self.momentum).add_(self.momentum * var * n / (n - 1))
        scale = (self.bn_w * torch.rsqrt(var + self.eps))[None, :, None, None]
        return diff * scale + self.bn_b[None, :, None, None]

    @torch.no_grad()
    def unstack(self, nets: list[nn.Module]) -> list[nn.Module]:
        """Copy fold j's slice back into ``nets[j]`` (the per-fold modules used for prediction)."""
        w = self.width
        for j, net in enumerate(nets):
            s = slice(j * w, (j + 1) * w)
            net.conv.weight.copy_(self.conv_w[s]), net.conv.bias.copy_(self.conv_b[s])
            net.bn.weight.copy_(self.bn_w[s]), net.bn.bias.copy_(self.bn_b[s])
            net.bn.running_mean.copy_(self.running_mean[s]), net.bn.running_var.copy_(self.running_var[s])
            net.bn.num_batches_tracked.add_(self.steps)
            net.fc.weight.copy_(self.fc_w[j]), net.fc.bias.copy_(self.fc_b[j])
        return [n.to(memory_format=torch.channels_last) for n in nets]

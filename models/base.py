"""Base classes of the classifiers.

Models are scikit-learn-style estimators (hyperparameters in ``__init__``,
learned state in ``*_`` attributes) so the runner can ``clone`` a fresh one per
fold. Each declares the input kinds it accepts; the registry check rejects
incompatible representation/model pairs before any work is done.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.base import BaseEstimator
from torch import nn

from benchmark.metrics import METRICS


@dataclass
class SelectionSet:
    """Data the epoch is chosen on: an inner validation split, or (oracle) the test fold."""

    X: np.ndarray
    y: np.ndarray
    criterion: str = "accuracy"  # a name in benchmark.metrics.METRICS


class Model(BaseEstimator):
    accepts: frozenset[str] = frozenset()

    def fit(self, X, y, n_classes: int, selection: SelectionSet | None = None) -> "Model":
        raise NotImplementedError

    def predict_proba(self, X) -> np.ndarray:
        raise NotImplementedError


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but no CUDA device is available")
    return torch.device(device)


class TorchClassifier(Model):
    """Full-batch-on-device training loop shared by the torch models.

    The data are moved to the device once; each epoch draws a seeded
    permutation and steps through mini-batches. With a ``SelectionSet`` the
    model is scored after every epoch and the best epoch's weights are kept
    (ties keep the earlier epoch); without one, the last epoch is used.
    """

    accepts = frozenset({"flow_image", "image"})

    def __init__(self, epochs: int = 100, lr: float = 1e-3, batch_size: int = 64,
                 weight_decay: float = 0.0, optimizer: str = "adam", loss: str = "ce",
                 seed: int = 0, device: str = "cpu"):
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.loss = loss
        self.seed = seed
        self.device = device

    def build(self, in_shape: tuple[int, ...], n_classes: int) -> nn.Module:
        raise NotImplementedError

    def _optimizer(self, params):
        opts = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
        if self.optimizer not in opts:
            raise ValueError(f"unknown optimizer {self.optimizer!r} (known: {', '.join(opts)})")
        return opts[self.optimizer](params, lr=self.lr, weight_decay=self.weight_decay)

    def _loss(self, y: torch.Tensor, n_classes: int) -> nn.Module:
        if self.loss == "ce":
            return nn.CrossEntropyLoss()
        if self.loss == "weighted-ce":
            counts = torch.bincount(y, minlength=n_classes).float().clamp(min=1)
            return nn.CrossEntropyLoss(weight=(counts.sum() / (n_classes * counts)).to(y.device))
        raise ValueError(f"unknown loss {self.loss!r} (known: ce, weighted-ce)")

    def fit(self, X, y, n_classes: int, selection: SelectionSet | None = None) -> "TorchClassifier":
        dev = resolve_device(self.device)
        torch.manual_seed(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        Xt = self._to_input(torch.as_tensor(np.asarray(X), dtype=torch.float32, device=dev))
        yt = torch.as_tensor(np.asarray(y), dtype=torch.long, device=dev)
        net = self.build(tuple(Xt.shape[1:]), n_classes).to(dev)
        if Xt.dim() == 4:
            net = net.to(memory_format=torch.channels_last)
        opt, loss_fn = self._optimizer(net.parameters()), self._loss(yt, n_classes)
        self.history_, best, self.best_epoch_ = [], -np.inf, self.epochs
        best_state = None
        for epoch in range(1, self.epochs + 1):
            net.train()
            for idx in torch.randperm(len(Xt), generator=gen).to(dev).split(self.batch_size):
                opt.zero_grad(set_to_none=True)
                loss_fn(net(Xt[idx]), yt[idx]).backward()
                opt.step()
            if selection is not None:
                self.net_ = net
                score = METRICS[selection.criterion](selection.y, self.predict_proba(selection.X).argmax(1))
                self.history_.append(score)
                if score > best:
                    best, self.best_epoch_, best_state = score, epoch, copy.deepcopy(net.state_dict())
        if best_state is not None:
            net.load_state_dict(best_state)
        self.net_ = net
        return self

    @staticmethod
    def _to_input(x: torch.Tensor) -> torch.Tensor:
        # Channels-last makes the small-channel convolutions about 1.5x faster on CPU.
        return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x

    @torch.no_grad()
    def predict_proba(self, X) -> np.ndarray:
        net = self.net_
        dev = next(net.parameters()).device
        net.eval()
        Xt = torch.as_tensor(np.asarray(X), dtype=torch.float32)
        out = [torch.softmax(net(self._to_input(b.to(dev))), 1).cpu() for b in Xt.split(1024)]
        return torch.cat(out).numpy()

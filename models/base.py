"""Base classes of the classifiers.

Models are scikit-learn-style estimators (hyperparameters in ``__init__``,
learned state in ``*_`` attributes) so the runner can ``clone`` a fresh one per
fold. Each declares the input kinds it accepts; the registry check rejects
incompatible representation/model pairs before any work is done.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from sklearn.base import BaseEstimator
from torch import nn

from benchmark.core.device import resolve_device
from benchmark.core.metrics import METRICS
from models.losses import make_loss

AGGREGATES = ("mean", "vote")


@dataclass
class EpochChoiceSet:
    """Data the epoch is chosen on: an inner validation split, or (oracle) the test fold."""

    X: np.ndarray
    y: np.ndarray
    criterion: str = "accuracy"  # a name in benchmark.core.metrics.METRICS


class EpochChoice:
    """The epoch rule of the torch training loops, called after every epoch.

    Without a ``EpochChoiceSet`` the last epoch is kept. With one, the model is
    scored on it after each epoch and the best epoch's weights are kept (ties
    keep the earlier epoch). The scoring runs in ``eval`` mode under
    ``no_grad`` and draws no random numbers, so training is the same as
    without it; the last epoch's probabilities on the set are kept in
    ``model.last_selection_proba_``: under oracle selection (the set is the test
    fold) they are the ``fixed`` run's test predictions
    (``benchmark.benchmark.twin.fixed_companion``).
    """

    def __init__(self, model: "Model", selection: "EpochChoiceSet | None"):
        self.model, self.selection, self.best, self.state = model, selection, -np.inf, None
        model.history_, model.best_epoch_ = [], model.epochs

    def after_epoch(self, net: nn.Module, epoch: int) -> None:
        if self.selection is None:
            return
        self.model.net_ = net
        proba = self.model.predict_proba(self.selection.X)
        score = METRICS[self.selection.criterion](self.selection.y, proba.argmax(1))
        self.model.history_.append(score)
        if score > self.best:
            self.best, self.model.best_epoch_, self.state = score, epoch, copy.deepcopy(net.state_dict())
        if epoch == self.model.epochs:
            self.model.last_selection_proba_ = proba

    def finish(self, net: nn.Module) -> nn.Module:
        if self.state is not None:
            net.load_state_dict(self.state)
        return net


class Model(BaseEstimator):
    accepts: frozenset[str] = frozenset()

    def fit(self, X, y, n_classes: int, selection: EpochChoiceSet | None = None,
            class_names: Sequence[str] | None = None) -> "Model":
        raise NotImplementedError

    def predict_proba(self, X) -> np.ndarray:
        raise NotImplementedError



def frames_to_samples(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, T, C, H, W) videos -> (M, C, H, W) frames with their video's label.

    A frame that is NaN everywhere is padding (videos with fewer than T frames)
    and is dropped; a video with no real frame is an error.
    """
    valid = frame_mask(X)
    if not valid.any(axis=1).all():
        raise ValueError("a 'frames' sample has no frame that is not NaN padding")
    frames = X.reshape(-1, *X.shape[2:]) if valid.all() else X[valid]  # a view when nothing is padding
    return frames, np.repeat(np.asarray(y), valid.sum(axis=1))


def frame_mask(X: np.ndarray) -> np.ndarray:
    """(N, T) True where the frame is real (not all-NaN padding; integer frames are all real)."""
    if not np.issubdtype(X.dtype, np.floating):
        return np.ones(X.shape[:2], bool)
    return ~np.isnan(X).all(axis=tuple(range(2, X.ndim)))


def compact(X: np.ndarray) -> np.ndarray:
    """Floats as float32; integer inputs (uint8 frames) stay small and are cast per batch."""
    return X if X.dtype == np.float32 or np.issubdtype(X.dtype, np.integer) else X.astype(np.float32)


def aggregate_frames(logits: torch.Tensor, valid: torch.Tensor, how: str) -> np.ndarray:
    """Video-level probabilities from (N, T, K) frame logits and an (N, T) mask.

    ``mean``: softmax of the mean logit over the video's frames. ``vote``: the
    share of frames whose arg-max is each class (majority vote, the decision of
    the Preprocessing Paradox paper for KFS/MFS), with ties broken by the mean
    logits: half the ``mean`` probabilities (< 1 vote) are added to the counts
    before normalising, so the arg-max is the majority class.
    """
    if how not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {', '.join(AGGREGATES)}, not {how!r}")
    w = valid.float()[..., None]
    mean = torch.softmax((logits * w).sum(1) / w.sum(1), 1)
    if how == "mean":
        return mean.numpy()
    votes = (torch.nn.functional.one_hot(logits.argmax(2), logits.shape[2]) * w).sum(1)
    score = votes + 0.5 * mean
    return (score / score.sum(1, keepdim=True)).numpy()


class TorchClassifier(Model):
    """Full-batch-on-device training loop shared by the torch models.

    The data are moved to the device once; each epoch draws a seeded
    permutation and steps through mini-batches. With a ``EpochChoiceSet`` the
    model is scored after every epoch and the best epoch's weights are kept
    (ties keep the earlier epoch); without one, the last epoch is used.

    Losses are named in ``models.losses`` (``ce``, ``weighted-ce``, ``focal``,
    ``focal-unweighted``); optimizers are ``adam``, ``adamw``, ``sgd``.

    ``frames`` inputs (N, T, C, H, W), for models that accept them: every frame
    is a training sample carrying its video's label; at prediction the frames'
    logits are aggregated per video (``aggregate`` hyperparameter of the
    subclass: ``mean`` logits, default, or majority ``vote``). All-NaN frames
    are padding and are ignored.

    ``weights_source_`` records where the initial weights came from:
    ``"scratch"`` here; subclasses that load a checkpoint replace it.
    """

    accepts = frozenset({"flow_image", "image"})
    predict_batch = 1024  # samples per forward pass at prediction
    cuda_autocast = True  # bf16 autocast when training on CUDA (False: float32, as `perf --sections gpu` checks)

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

    def _optimizer(self, params, lr: float | None = None):
        opts = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
        if self.optimizer not in opts:
            raise ValueError(f"unknown optimizer {self.optimizer!r} (known: {', '.join(opts)})")
        return opts[self.optimizer](params, lr=self.lr if lr is None else lr, weight_decay=self.weight_decay)

    def _loss(self, y: torch.Tensor, n_classes: int) -> nn.Module:
        return make_loss(self.loss, y, n_classes).to(y.device)

    def fit(self, X, y, n_classes: int, selection: EpochChoiceSet | None = None,
            class_names: Sequence[str] | None = None) -> "TorchClassifier":
        dev = resolve_device(self.device)
        torch.manual_seed(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        X, y = np.asarray(X), np.asarray(y)
        if X.ndim == 5:
            X, y = frames_to_samples(X, y)
        Xt = self._to_input(torch.as_tensor(compact(X), device=dev))  # uint8 stays uint8 on the device
        yt = torch.as_tensor(y, dtype=torch.long, device=dev)
        self.weights_source_ = "scratch"
        net = self.build(tuple(Xt.shape[1:]), n_classes).to(dev)
        if Xt.dim() == 4:
            net = net.to(memory_format=torch.channels_last)
        opt, loss_fn = self._optimizer(net.parameters()), self._loss(yt, n_classes)
        choice = EpochChoice(self, selection)
        amp = dev.type == "cuda" and self.cuda_autocast  # bf16 on GPU; CPU stays float32 and deterministic
        for epoch in range(1, self.epochs + 1):
            net.train()
            for idx in self._batches(yt, gen):
                opt.zero_grad(set_to_none=True)
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                    loss = loss_fn(net(Xt[idx].float()), yt[idx])
                loss.backward()
                opt.step()
            choice.after_epoch(net, epoch)
        self.net_ = choice.finish(net)
        return self

    def _batches(self, yt: torch.Tensor, gen: torch.Generator):
        """Mini-batch index tensors for one epoch.

        ``batch_order="shuffle"`` (default): a seeded permutation per epoch.
        ``"by-class"``: no shuffling, training samples grouped by class in list
        order, which is what the public STSTNet/HTNet scripts do (an unshuffled
        DataLoader over per-class folders); offered to reproduce them.
        """
        order = getattr(self, "batch_order", "shuffle")
        if order == "shuffle":
            idx = torch.randperm(len(yt), generator=gen).to(yt.device)
        elif order == "by-class":
            idx = torch.argsort(yt, stable=True)
        else:
            raise ValueError(f"batch_order must be 'shuffle' or 'by-class', not {order!r}")
        return idx.split(self.batch_size)

    @staticmethod
    def _to_input(x: torch.Tensor) -> torch.Tensor:
        # Channels-last makes the small-channel convolutions about 1.5x faster on CPU.
        return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x

    @torch.no_grad()
    def _forward(self, X: np.ndarray, fn) -> torch.Tensor:
        """``fn(net(batch))`` over ``predict_batch``-sized chunks, concatenated on the CPU."""
        net = self.net_
        dev = next(net.parameters()).device
        net.eval()
        Xt = torch.as_tensor(compact(X))
        return torch.cat([fn(net(self._to_input(b.to(dev).float()))).float().cpu()
                          for b in Xt.split(self.predict_batch)])

    def predict_proba(self, X) -> np.ndarray:
        X = np.asarray(X)
        if X.ndim != 5:
            return self._forward(X, lambda z: torch.softmax(z, 1)).numpy()
        valid = frame_mask(X)
        if not valid.any(axis=1).all():
            raise ValueError("a 'frames' sample has no frame that is not NaN padding")
        flat = self._forward(X[valid], lambda z: z)
        logits = torch.zeros(*valid.shape, flat.shape[1])
        logits[torch.as_tensor(valid)] = flat
        return aggregate_frames(logits, torch.as_tensor(valid), getattr(self, "aggregate", "mean"))

"""D-FACE trained as the paper trains it: the tokenizer fine-tuned jointly with the classifier.

    (onset, apex) pairs (kind ``pairs``, from ``dface-pairs``) -> the model's own copy of the
    C-VQ-VAE -> D = E2 - E1 -> action tokens -> the token Transformer (``models.transformer``:
    sparse attention pooling, EDCLIP) -> logits.
    Loss = the Transformer's objective (CE + lambda_sparse * entropy + lambda_EDCLIP * EDCLIP)
           + lambda_rec * pixel MSE of the tokenizer's reconstruction of the apex frame   (Eq. 15)

The paper: "120 epochs ... together with C-VQ-VAE finetuning", lambda_rec = 0.1 (section 4.2).
Only the fold's training samples enter: the runner fits one model per fold.

Tokens while training are NSVQ's noise-substituted vectors (``d + ||d - z|| v / ||v||``), the
tokenizer's own training path: they pass the classifier's gradient to the encoder and to the
codebook, which the nearest-code lookup cannot; the decoder reconstructs from the same vectors.
At prediction the tokens are the nearest codebook vectors, what ``dface`` gives a frozen
head. No dead-code replacement and no flips (``dface``'s fine-tuning has none either).

The tokenizer comes from the representation (models never import representations): the
runner calls :meth:`DFaceJoint.bind_representation` with the fold's ``dface-pairs``, whose
``tokenizer()`` hands over a copy of its checkpoint's network (the synthetic default, or the
fold's cross-fitted one under ``pretrain=crossfit``), and passes the training samples'
subjects to ``fit``. The fitted model records the checkpoint's sha256 (``weights_source_``,
``tokenizer_``) and :meth:`training_subjects`: the checkpoint's pretraining subjects plus the
fine-tuning ones, which the runner's contamination check compares with the test subjects.
The network's interface used here: ``motion``, ``decode``, ``quant.nearest``,
``quant.substitute``, ``quant.codebook`` and ``cfg.n_tokens`` / ``cfg.code_dim``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.core.device import resolve_device
from models import MODELS
from models.base import EpochChoice, EpochChoiceSet
from models.edclip import DEFAULT_ENCODER
from models.transformer import TokenNet, Transformer


class JointNet(nn.Module):
    """Tokenizer + token head; in train mode ``forward`` also leaves the reconstruction MSE in ``rec``."""

    def __init__(self, tokenizer: nn.Module, head: TokenNet, reconstruct: bool = True):
        super().__init__()
        self.tokenizer, self.head, self.reconstruct = tokenizer, head, reconstruct
        self.generator: torch.Generator | None = None  # NSVQ noise (CPU); None: the global RNG
        self.rec: torch.Tensor | None = None

    @property
    def aux(self) -> dict:  # Transformer.attention reads the head's pooling weights here
        return self.head.aux

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        i1, i2 = pairs[:, 0], pairs[:, 1]
        tok = self.tokenizer
        first, d = tok.motion(i1, i2)
        idx = tok.quant.nearest(d)
        self.rec = None
        if not self.training:
            return self.head(tok.quant.codebook[idx])
        z = tok.quant.substitute(d, idx, self.generator)
        if self.reconstruct:
            self.rec = F.mse_loss(tok.decode(first, z, i1), i2)
        return self.head(z)


@MODELS.register()
class DFaceJoint(Transformer):
    """The token Transformer on its own copy of the D-FACE tokenizer, both trained on the fold.

    Inputs: kind ``pairs`` (``dface-pairs``). Parameters: those of ``transformer`` (head size
    ``preset``, ``lr`` of the head, EDCLIP, ablations; ``epochs`` 120), and

    Args:
        lambda_rec: weight of the reconstruction loss (paper: 0.1); 0 trains the tokenizer's
            encoder and codebook by the classifier's loss alone (the decoder then stays as is).
        tokenizer_lr: Adam learning rate of the tokenizer's parameters (default 2e-4, the
            paper's single learning rate; the small head's own ``lr`` is 3e-3); 0 freezes the
            tokenizer (the head still sees NSVQ's noisy tokens while training).
    """

    accepts = frozenset({"pairs"})
    predict_batch = 256  # pairs per forward pass: the tokenizer's activations are 128 tokens a pair

    def __init__(self, epochs: int = 120, lr: float | None = None, batch_size: int | None = None,
                 weight_decay: float = 1e-5, optimizer: str = "adam", loss: str = "ce", seed: int = 0,
                 device: str = "cpu", preset: str = "small", width: int | None = None, heads: int | None = None,
                 layers: int | None = None, ff: int | None = None, dropout: float | None = None, pos: str = "1d",
                 backbone: str = "transformer", pool: str = "sparse", lambda_sparse: float = 1e-3,
                 edclip: bool = True, lambda_edclip: float = 0.3, lambda_oth: float = 0.2, delta: float = 0.2,
                 tau: float = 0.07, text_encoder: str = DEFAULT_ENCODER, classes: str | None = None,
                 lambda_rec: float = 0.1, tokenizer_lr: float = 2e-4):
        super().__init__(epochs=epochs, lr=lr, batch_size=batch_size, weight_decay=weight_decay,
                         optimizer=optimizer, loss=loss, seed=seed, device=device, preset=preset, width=width,
                         heads=heads, layers=layers, ff=ff, dropout=dropout, pos=pos, backbone=backbone, pool=pool,
                         lambda_sparse=lambda_sparse, edclip=edclip, lambda_edclip=lambda_edclip,
                         lambda_oth=lambda_oth, delta=delta, tau=tau, text_encoder=text_encoder, classes=classes)
        self.lambda_rec = lambda_rec
        self.tokenizer_lr = tokenizer_lr

    # ------------------------------------------------------------------ the tokenizer

    def bind_representation(self, rep) -> "DFaceJoint":
        """Take a copy of ``rep``'s tokenizer (``rep.tokenizer()``: network, checkpoint meta):
        the runner calls it per fold with the fold's fitted representation."""
        if not hasattr(rep, "tokenizer"):
            raise ValueError(f"dface-joint needs the dface-pairs representation (its tokenizer), "
                             f"not {type(rep).__name__}")
        self.bound_tokenizer_ = rep.tokenizer()
        return self

    def training_subjects(self) -> set[str]:
        """The checkpoint's pretraining subjects and the subjects it was fine-tuned on."""
        if getattr(self, "fine_tuned_on_", None) is None:
            raise RuntimeError("dface-joint was fitted without its training subjects (fit(..., subjects=...)): "
                               "its contamination cannot be checked")
        return set(self.tokenizer_["pretrained_on"]) | set(self.fine_tuned_on_)

    # ------------------------------------------------------------------ training

    def fit(self, X, y, n_classes: int, selection: EpochChoiceSet | None = None,
            class_names: Sequence[str] | None = None, subjects: Sequence[str] | None = None) -> "DFaceJoint":
        """As ``transformer``; ``subjects``: the training samples' subjects (the runner passes them)."""
        for name, value in (("lambda_rec", self.lambda_rec), ("tokenizer_lr", self.tokenizer_lr)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"dface-joint: {name} must be a number >= 0, not {value!r}")
        if getattr(self, "bound_tokenizer_", None) is None:
            raise RuntimeError("dface-joint has no tokenizer: call bind_representation(rep) with a dface-pairs "
                               "representation first (the runner does, per fold)")
        X = np.asarray(X)
        if X.ndim != 5 or X.shape[1] != 2:
            raise ValueError(f"dface-joint expects (N, 2, C, S, S) pairs from dface-pairs, got shape {X.shape}")
        self.fine_tuned_on_ = None if subjects is None else sorted({str(s) for s in subjects})
        return super().fit(X, y, n_classes, selection, class_names)

    def _fit(self, X, y, n_classes: int, selection: EpochChoiceSet | None,
             class_names: Sequence[str] | None = None) -> "DFaceJoint":
        import copy

        dev = resolve_device(self.device)
        torch.manual_seed(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        Xt = torch.as_tensor(X, dtype=torch.float32, device=dev)
        yt = torch.as_tensor(np.asarray(y), dtype=torch.long, device=dev)
        tokenizer, meta = copy.deepcopy(self.bound_tokenizer_[0]), self.bound_tokenizer_[1]
        cfg = tokenizer.cfg
        if tuple(Xt.shape[2:]) != (cfg.channels, cfg.image_size, cfg.image_size):
            raise ValueError(f"dface-joint: pairs of {tuple(Xt.shape[2:])} do not fit the tokenizer's "
                             f"{(cfg.channels, cfg.image_size, cfg.image_size)} input (another preset?)")
        text = self._text(n_classes, dev, class_names)
        head = self.build((cfg.n_tokens, cfg.code_dim), n_classes, None if text is None else text[0].shape[1])
        train_tok = self.tokenizer_lr > 0
        net = JointNet(tokenizer.requires_grad_(train_tok), head, reconstruct=train_tok and self.lambda_rec > 0).to(dev)
        net.generator = gen if dev.type == "cpu" else None
        size = self._size()
        groups = [{"params": list(head.parameters()), "lr": size["lr"]}]
        if train_tok:
            groups.append({"params": list(tokenizer.parameters()), "lr": self.tokenizer_lr})
        opt = self._optimizer(groups, lr=size["lr"])
        cls_loss, batch = self._loss(yt, n_classes), size["batch_size"]
        self.weights_source_ = f"{meta['path'].rsplit('/', 1)[-1]} sha256:{meta['sha256']}"
        self.tokenizer_ = {"checkpoint": meta["path"], "sha256": meta["sha256"],
                           "pretrained_on": sorted(meta["trained_on"]["subjects"]),
                           "fine_tuned": train_tok, "lambda_rec": self.lambda_rec, "tokenizer_lr": self.tokenizer_lr}
        self.losses_ = []  # per epoch: mean head objective, reconstruction MSE and total
        choice = EpochChoice(self, selection)
        for epoch in range(1, self.epochs + 1):
            net.train()
            terms = []
            for idx in torch.randperm(len(Xt), generator=gen).to(dev).split(batch):
                opt.zero_grad(set_to_none=True)
                objective = self._objective(head, net(Xt[idx]), yt[idx], cls_loss, text)
                loss = objective if net.rec is None else objective + self.lambda_rec * net.rec
                loss.backward()
                opt.step()
                terms.append((objective.item(), 0.0 if net.rec is None else net.rec.item(), loss.item()))
            self.losses_.append(dict(zip(("objective", "rec", "loss"), np.mean(terms, 0).tolist())))
            choice.after_epoch(net, epoch)
        self.net_ = choice.finish(net).eval()
        return self

    def predict_proba(self, X) -> np.ndarray:
        # pairs are 5-D like "frames" videos, but one pair is one sample: no per-frame aggregation
        return self._forward(np.asarray(X, dtype=np.float32), lambda z: torch.softmax(z, 1)).numpy()

"""D-FACE's recognition network (sections 3.3-3.4, 4.2): a Transformer over action tokens.

    tokens (N, L, code_dim) -> linear token embedding -> + learnable 1D positional
    embedding -> 2 Transformer encoder layers (width 512, 8 heads) -> sparse attention
    pooling (global query q: alpha = softmax(X q / sqrt(d)), o = sum alpha_i X_i)
    -> linear head.  Loss = CE + lambda_sparse * entropy(alpha) / L
                            + lambda_EDCLIP * (L_CLIP + lambda_oth * L_oth)

Adam, lr 2e-4, weight decay 1e-5, 120 epochs; lambda_sparse 1e-3, lambda_EDCLIP 0.3,
lambda_oth 0.2, delta 0.2. The paper also fine-tunes the tokenizer jointly
(lambda_rec 0.1); here the tokenizer is fixed during classification and can be
fine-tuned per fold beforehand (``--rep-param finetune_steps=N``); the joint training
is ``dface-joint`` (``models/dface_joint.py``) on ``dface-pairs``.

``preset`` sets the size: ``paper`` (width 512, 8 heads, 2 layers, feed-forward 512,
dropout 0.2, batch 16, lr 2e-4) or ``small`` (the default: width 32, 4 heads, 2 layers,
feed-forward 128, dropout 0.1, batch 256 = one step per epoch on a CDE fold, lr 3e-3),
which makes the 68 LOSO folds of CDE fit in a few minutes on two CPU cores.
``width``/``heads``/``layers``/``ff``/``dropout``/``batch_size``/``lr`` override it.

Ablations (Table 6, A.9) as parameters: ``pos="2d"`` (row + column embeddings),
``backbone="cnn"`` (as many 3x3 conv layers on the h x w grid as Transformer
layers), ``pool="mean"`` or ``pool="cls"`` (class token), ``edclip=False``; the
continuous-D ablation is the representation's ``discretize=False``.
"""
from __future__ import annotations

import math

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models import MODELS
from benchmark.core.device import resolve_device
from models.base import EpochChoice, EpochChoiceSet, TorchClassifier
from models.edclip import DEFAULT_ENCODER, class_prompts, edclip_loss, encoder_version, prompt_embeddings

# paper: width 512, 8 heads, 2 layers (section 4.2); feed-forward 512, dropout 0.2 and batch 16
# are those of D-FACE's public training script (the paper does not give them).
# small: one full-batch step per epoch on CDE-sized folds, so a higher learning rate.
MODEL_PRESETS = {
    "paper": {"width": 512, "heads": 8, "layers": 2, "ff": 512, "dropout": 0.2, "batch_size": 16, "lr": 2e-4},
    "small": {"width": 32, "heads": 4, "layers": 2, "ff": 128, "dropout": 0.1, "batch_size": 256, "lr": 3e-3},
}
SMALL_WIDTH = 128  # up to this width training runs on one CPU thread (see Transformer.fit)
POS = ("1d", "2d", "none")
BACKBONES = ("transformer", "cnn")
POOLS = ("sparse", "mean", "cls")


def attention_entropy(alpha: torch.Tensor) -> torch.Tensor:
    """Eq. 11 per sample: -(1/L) sum_i alpha_i log alpha_i."""
    return -(alpha * alpha.clamp_min(1e-12).log()).sum(-1) / alpha.shape[-1]


class SparseAttentionPool(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.query = nn.Parameter(torch.randn(width) * 0.02)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        alpha = torch.softmax(x @ self.query / math.sqrt(x.shape[-1]), dim=-1)
        return (alpha[..., None] * x).sum(1), alpha


class EncoderLayer(nn.Module):
    """Pre-norm Transformer encoder layer (self-attention + GELU feed-forward).

    The same computation as ``nn.TransformerEncoderLayer(norm_first=True,
    activation="gelu")`` except that dropout is applied to the two residual
    branches only, not to the attention weights; on 16-token sequences the
    library layer's generic path cost 1.5x the CPU time of this one."""

    def __init__(self, width: int, heads: int, ff: int, dropout: float):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.heads, self.p = heads, dropout
        self.norm1, self.qkv, self.proj = nn.LayerNorm(width), nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.norm2, self.ff1, self.ff2 = nn.LayerNorm(width), nn.Linear(width, ff), nn.Linear(ff, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(B, N, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        # explicit softmax(QK^T)V: for 16 tokens the fused CPU kernel's backward cost 7x more
        a = torch.softmax(q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5, -1) @ v
        a = a.transpose(1, 2).reshape(B, N, D)
        x = x + F.dropout(self.proj(a), self.p, self.training)
        return x + F.dropout(self.ff2(F.gelu(self.ff1(self.norm2(x)))), self.p, self.training)


class TokenNet(nn.Module):
    """The network; ``forward`` returns logits and keeps ``aux`` (alpha, pooled o)."""

    def __init__(self, in_dim: int, n_tokens: int, n_classes: int, width: int, heads: int, layers: int,
                 ff: int | None = None, dropout: float = 0.1, pos: str = "1d", backbone: str = "transformer",
                 pool: str = "sparse",
                 grid: tuple[int, int] | None = None, text_dim: int | None = None, patch: int | None = None,
                 vocab: int | None = None):
        super().__init__()
        self.patch = patch  # image inputs (B, C, H, W) are cut into patch x patch tokens in forward
        self.vocab = vocab  # integer token ids (B, L): a learned table, the last row for ids unseen in training
        self.pos_kind, self.backbone, self.pool_kind = pos, backbone, pool
        self.grid = grid or _square(n_tokens)
        # T(P(z)): two linear maps learned as one
        self.embed = nn.Embedding(vocab, width) if vocab else nn.Linear(in_dim, width)
        h, w = self.grid
        if pos == "1d":
            self.pos = nn.Parameter(torch.randn(1, n_tokens, width) * 0.02)
        elif pos == "2d":
            self.row = nn.Parameter(torch.randn(1, h, 1, width) * 0.02)
            self.col = nn.Parameter(torch.randn(1, 1, w, width) * 0.02)
        if backbone == "transformer":
            self.encoder = nn.Sequential(*[EncoderLayer(width, heads, ff or 4 * width, dropout) for _ in range(layers)])
            self.final_norm = nn.LayerNorm(width)
        else:
            self.encoder = nn.Sequential(*[nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width),
                                                         nn.GELU()) for _ in range(layers)])
        if pool == "sparse":
            self.pool = SparseAttentionPool(width)
        elif pool == "cls":
            self.cls = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(width, n_classes)
        self.text_proj = nn.Linear(width, text_dim) if text_dim else None  # f(.) of EDCLIP
        self.aux: dict = {}

    def positions(self, x: torch.Tensor) -> torch.Tensor:
        if self.pos_kind == "1d":
            return x + self.pos
        if self.pos_kind == "2d":
            h, w = self.grid
            return x + (self.row + self.col).reshape(1, h * w, -1)
        return x

    def features(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, L, width) contextual token features ((B, 1 + L, width) with a class token first)."""
        if tokens.dim() == 4:
            tokens = patch_tokens(tokens / 127.5 - 1.0, self.patch)  # 0..255 images to about [-1, 1]
        if self.vocab:
            tokens = tokens.long().clamp(0, self.vocab - 1)
        x = self.positions(self.embed(tokens))
        if self.backbone == "cnn":
            h, w = self.grid
            g = x.transpose(1, 2).reshape(len(x), -1, h, w)
            return self.encoder(g).flatten(2).transpose(1, 2)
        if self.pool_kind == "cls":
            x = torch.cat([self.cls.expand(len(x), -1, -1), x], 1)
        return self.final_norm(self.encoder(x))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.features(tokens)
        alpha = None
        if self.pool_kind == "sparse":
            o, alpha = self.pool(x)
        elif self.pool_kind == "cls":
            o = x[:, 0]
        else:
            o = x.mean(1)
        self.aux = {"alpha": alpha, "pooled": o}
        return self.head(self.drop(o))


def patch_tokens(images: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, (H/p)(W/p), C p p): non-overlapping patches in row-major order, the
    ViT cut, so a flow/strain image becomes a short token sequence for the same head."""
    b, c, h, w = images.shape
    x = images.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(b, (h // patch) * (w // patch), c * patch * patch)


def _vocabulary(X: np.ndarray) -> int | None:
    """Rows of the embedding table for integer token ids (N, L): the largest id + 1, plus one row
    that every larger id at prediction shares; None for any other input."""
    if X.ndim != 2:
        return None
    if not np.issubdtype(X.dtype, np.integer) or (X.size and X.min() < 0):
        raise ValueError(f"transformer: 2-D samples must be non-negative integer token ids (N, L), got {X.dtype}"
                         + (f" with minimum {X.min()}" if X.size and np.issubdtype(X.dtype, np.number) else ""))
    return int(X.max()) + 2


def _square(n: int) -> tuple[int, int]:
    side = int(round(math.sqrt(n)))
    return (side, side) if side * side == n else (1, n)


@MODELS.register()
class Transformer(TorchClassifier):
    """Transformer with sparse attention pooling and EDCLIP over D-FACE tokens.

    Inputs: kind ``tokens``, float (N, L, code_dim) (``dface`` gives (N, 16, 32)), or integer
    token ids (N, L) embedded by a learned table (``dfe`` gives (N, 36): 9 frames x 4 RVQ stages;
    ids above the training set's largest share one "unseen" row); or image-like kinds
    (``flow_image``, ``image``: (N, C, H, W), 0..255) cut into ``patch`` x ``patch`` tokens
    (28x28 flow/strain images -> a 4x4 grid of 16 tokens, as many as D-FACE's), so the D-FACE
    head can be compared with the other heads on the same flow.
    ``classes``: comma-separated class names for EDCLIP's prompts; None infers them
    from the number of classes and the project's label sets (3 -> MEGC2019 3-class,
    5 -> CASME II 5-class, ...). ``text_encoder`` names the prompt-embedding source
    (``models.edclip``); the fitted ``text_encoder_`` records its version.
    """

    accepts = frozenset({"tokens", "flow_image", "image"})

    def __init__(self, epochs: int = 120, lr: float | None = None, batch_size: int | None = None,
                 weight_decay: float = 1e-5, optimizer: str = "adam", loss: str = "ce", seed: int = 0,
                 device: str = "cpu", preset: str = "small", width: int | None = None, heads: int | None = None,
                 layers: int | None = None, ff: int | None = None, dropout: float | None = None, pos: str = "1d",
                 backbone: str = "transformer",
                 pool: str = "sparse", lambda_sparse: float = 1e-3, edclip: bool = True, lambda_edclip: float = 0.3,
                 lambda_oth: float = 0.2, delta: float = 0.2, tau: float = 0.07,
                 text_encoder: str = DEFAULT_ENCODER, classes: str | None = None, patch: int = 7):
        super().__init__(epochs=epochs, lr=lr, batch_size=batch_size, weight_decay=weight_decay,
                         optimizer=optimizer, loss=loss, seed=seed, device=device)
        self.preset = preset
        self.width = width
        self.heads = heads
        self.layers = layers
        self.ff = ff
        self.dropout = dropout
        self.pos = pos
        self.backbone = backbone
        self.pool = pool
        self.lambda_sparse = lambda_sparse
        self.edclip = edclip
        self.lambda_edclip = lambda_edclip
        self.lambda_oth = lambda_oth
        self.delta = delta
        self.patch = patch
        self.tau = tau
        self.text_encoder = text_encoder
        self.classes = classes

    # ------------------------------------------------------------------ configuration

    def _size(self) -> dict:
        if self.preset not in MODEL_PRESETS:
            raise ValueError(f"unknown transformer preset {self.preset!r} (known: {', '.join(MODEL_PRESETS)})")
        size = dict(MODEL_PRESETS[self.preset])
        for key in ("width", "heads", "layers", "ff", "dropout", "batch_size", "lr"):
            if getattr(self, key) is not None:
                size[key] = getattr(self, key)
        for key, value, known in (("pos", self.pos, POS), ("backbone", self.backbone, BACKBONES),
                                  ("pool", self.pool, POOLS)):
            if value not in known:
                raise ValueError(f"{key} must be one of {', '.join(known)}, not {value!r}")
        if self.pool == "cls" and self.backbone == "cnn":
            raise ValueError("pool='cls' needs backbone='transformer' (a CNN has no class token)")
        return size

    def class_names(self, n_classes: int, given: Sequence[str] | None = None) -> list[str]:
        """The ``classes`` parameter, else the names the runner passes (the protocol's label set)."""
        if self.classes:
            names = [c.strip() for c in str(self.classes).split(",") if c.strip()]
        elif given is not None:
            names = list(given)
        else:
            raise ValueError(f"EDCLIP's prompts need the {n_classes} class names: pass "
                             "--model-param classes=a,b,c")
        if len(names) != n_classes:
            raise ValueError(f"classes={self.classes!r} names {len(names)} classes, the data have {n_classes}")
        return names

    def _text(self, n_classes: int, dev, given: Sequence[str] | None = None) -> tuple[torch.Tensor, torch.Tensor] | None:
        if not self.edclip or self.lambda_edclip == 0:
            self.text_encoder_ = None
            return None
        names = self.class_names(n_classes, given)
        prompts, index = class_prompts(names)
        if not prompts:
            raise ValueError(f"EDCLIP needs at least one described class, got {names}")
        emb = prompt_embeddings(prompts, self.text_encoder)
        self.text_encoder_ = encoder_version(self.text_encoder)
        self.edclip_classes_ = names
        return torch.as_tensor(emb, device=dev), torch.as_tensor(index, device=dev)

    def build(self, in_shape: tuple[int, ...], n_classes: int, text_dim: int | None = None,
              vocab: int | None = None) -> nn.Module:
        s = self._size()
        if len(in_shape) == 3:  # an image: patch tokens
            c, h, w = in_shape
            if h % self.patch or w % self.patch:
                raise ValueError(f"transformer: {h}x{w} images do not split into {self.patch}x{self.patch} "
                                 "patches; pass --model-param patch=N with N dividing both")
            grid = (h // self.patch, w // self.patch)
            return TokenNet(c * self.patch ** 2, grid[0] * grid[1], n_classes, s["width"], s["heads"], s["layers"],
                            s["ff"], s["dropout"], self.pos, self.backbone, self.pool, grid=grid,
                            text_dim=text_dim, patch=self.patch)
        if len(in_shape) == 1:  # integer token ids
            if not vocab:
                raise ValueError("transformer: 1-D samples must be non-negative integer token ids (N, L)")
            return TokenNet(0, in_shape[0], n_classes, s["width"], s["heads"], s["layers"], s["ff"], s["dropout"],
                            self.pos, self.backbone, self.pool, text_dim=text_dim, vocab=vocab)
        if len(in_shape) != 2:
            raise ValueError(f"transformer expects tokens (N, L, dim), token ids (N, L) or images (N, C, H, W), "
                             f"got samples of shape {in_shape}")
        return TokenNet(in_shape[1], in_shape[0], n_classes, s["width"], s["heads"], s["layers"], s["ff"],
                        s["dropout"], self.pos, self.backbone, self.pool, text_dim=text_dim)

    # ------------------------------------------------------------------ training

    def _objective(self, net: TokenNet, logits, yb, cls_loss, text) -> torch.Tensor:
        loss = cls_loss(logits, yb)
        alpha = net.aux["alpha"]
        if alpha is not None and self.lambda_sparse:
            loss = loss + self.lambda_sparse * attention_entropy(alpha).mean()
        if text is not None:
            loss = loss + self.lambda_edclip * edclip_loss(net.text_proj(net.aux["pooled"]), yb, text[0], text[1],
                                                           self.tau, self.delta, self.lambda_oth)
        return loss

    def fit(self, X, y, n_classes: int, selection: EpochChoiceSet | None = None,
            class_names: Sequence[str] | None = None) -> "Transformer":
        threads = torch.get_num_threads()
        if resolve_device(self.device).type == "cpu" and self._size()["width"] <= SMALL_WIDTH:
            # 16-token sequences of width <= 128: matrices too small to split between threads;
            # on shared cores a second spinning thread made a CDE fold 4-6x slower (measured).
            torch.set_num_threads(1)
        try:
            return self._fit(X, y, n_classes, selection, class_names)
        finally:
            torch.set_num_threads(threads)

    def _fit(self, X, y, n_classes: int, selection: EpochChoiceSet | None,
             class_names: Sequence[str] | None = None) -> "Transformer":
        dev = resolve_device(self.device)
        torch.manual_seed(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        X = np.asarray(X)
        self.vocab_ = _vocabulary(X)
        Xt = torch.as_tensor(X, dtype=torch.float32, device=dev)
        yt = torch.as_tensor(np.asarray(y), dtype=torch.long, device=dev)
        text = self._text(n_classes, dev, class_names)
        net = self.build(tuple(Xt.shape[1:]), n_classes, None if text is None else text[0].shape[1],
                         self.vocab_).to(dev)
        size = self._size()
        opt = self._optimizer(net.parameters(), lr=size["lr"])
        cls_loss, batch = self._loss(yt, n_classes), size["batch_size"]
        self.weights_source_ = "scratch"
        choice = EpochChoice(self, selection)
        for epoch in range(1, self.epochs + 1):
            net.train()
            for idx in torch.randperm(len(Xt), generator=gen).to(dev).split(batch):
                opt.zero_grad(set_to_none=True)
                self._objective(net, net(Xt[idx]), yt[idx], cls_loss, text).backward()
                opt.step()
            choice.after_epoch(net, epoch)
        self.net_ = choice.finish(net).eval()
        return self

    @torch.no_grad()
    def attention(self, X) -> np.ndarray:
        """(N, L) sparse-pooling weights alpha (the paper's Fig. 4 shading); needs ``pool="sparse"``."""
        if self.pool != "sparse":
            raise ValueError("attention weights exist only with pool='sparse'")
        net = self.net_.eval()
        dev = next(net.parameters()).device
        out = []
        for b in torch.as_tensor(np.asarray(X), dtype=torch.float32).split(1024):
            net(b.to(dev))
            out.append(net.aux["alpha"].cpu())
        return torch.cat(out).numpy()

"""HTNet (Wang, Peng, Zhou, Lu & Chen, Neurocomputing 2024): hierarchical transformer on facial-region flow.

Input: a 3-channel flow image (flow + optical strain), in the public setup
28x28 made of four 14x14 crops around MTCNN landmarks of the apex frame (the
eyes on top, the mouth corners below; the flow representations' ``regions``
option builds it, see ``representations/regions.py``); this model takes
whatever square flow image it is given.

Architecture (the public code follows the NesT layout, Zhang et al. 2022; this
is an independent re-implementation of that layout, in channels-last tensors):

* patch embedding: non-overlapping PxP patches, flattened in (row, col,
  channel) order, linear to ``dim``;
* ``levels`` hierarchy levels. At level ``i`` (from the bottom) the feature map
  is cut into ``2**(levels-1-i)`` x ``2**(levels-1-i)`` blocks; each block is
  a sequence of tokens passed through ``block_repeats[i]`` pre-norm transformer
  layers (LN, multi-head self-attention, residual; LN, MLP 4x with GELU,
  residual) shared by all blocks of the level, after adding a learnt
  positional embedding; widths and heads double per level (``dim * 2**i``,
  ``heads * 2**i``), with ``dim_head = width // heads`` (integer division);
* between levels, block aggregation: 3x3 convolution to the next width,
  LayerNorm over channels, 3x3 max pooling with stride 2 (the map halves);
* head: LayerNorm, mean over positions, linear layer.

Behaviour of the public configuration a reader would not expect
(``htnet``: 28x28 input, patch 7, dim 256, heads 3, 3 levels, repeats (2, 2, 10)):

* **Every attention call sees one token.** Patch 7 on 28x28 gives a 4x4 patch
  grid, cut into 4x4 blocks at the bottom level, so each block is a single
  token; aggregation halves the map (4x4 -> 2x2 -> 1x1) while the block grid
  halves too (2x2, then 1), so every level's sequence length is 1. Softmax over
  one key is 1: each "self-attention" is the value projection followed by the
  output projection, i.e. a per-position linear map. The query and key
  weights (22,195,200 parameters) get a gradient that is zero up to rounding
  and stay at their initial values. The only spatial mixing in the network
  is the two 3x3 convolutions of the aggregation blocks; the local/global
  attention that the paper describes does not happen at this input size.
* **About 140 M parameters** (139,582,982 for 3 classes): widths 256/512/1024;
  the 10 top-level layers at width 1024 hold 125.8 M of them, for 442
  training images of 28x28.
* The positional embedding is one learnt scalar per position, shared by all
  channels (``randn(seq_len)``), not a vector in R^d as the paper's text says;
  with sequence length 1 it is a single scalar added to every feature.
* The paper's ablation starts from (2, 2, 8) layers; the public configuration
  uses (2, 2, 10). ``dim_head = dim // heads`` gives inner widths 255/510/1020.
* Inputs are the stored 0..255 values, unnormalised, in cv2 (BGR) order; no
  augmentation; Adam lr 5e-5, batch 256, 800 epochs, cross-entropy. The public
  script keeps, per test subject, the epoch with the best accuracy on that
  subject (``--selection oracle`` reproduces it; not the suite's default).

``htnet-small`` is a variant whose attention sees real sequences: patch 2 on
28x28 gives a 14x14 token grid; with 2 levels the bottom level has 2x2 blocks
of 7x7 = 49 tokens -- one block per facial region of the stitched input, so
attention is local to each region -- and after aggregation (14x14 -> 7x7) the
top level attends over all 49 positions of the face. Width 32/64, heads 2/4
(dim_head 16), repeats (2, 2), a positional embedding vector per position
(``pos_emb="vector"``): 148,867 parameters for 3 classes, about 15 M
multiply-adds per 28x28 image (about 1 CPU-second per epoch of the 442 CDE
images on one core). Same training defaults as ``htnet``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models import MODELS
from models.base import TorchClassifier

POS_EMB = ("scalar", "vector")


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dim_head = heads, dim // heads
        inner = self.dim_head * heads
        self.qkv = nn.Linear(dim, 3 * inner, bias=False)  # [q | k | v], each (head, dim_head)
        self.out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(dropout))

    def forward(self, x):  # (B, n, dim)
        b, n, _ = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, self.dim_head).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(q, k, v)  # scale 1/sqrt(dim_head)
        return self.out(o.transpose(1, 2).reshape(b, n, -1))


class _Layer(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_mult: int, dropout: float):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), _Attention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * mlp_mult), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(dim * mlp_mult, dim), nn.Dropout(dropout))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class _Transformer(nn.Module):
    """Layers shared by every block of one level, with a learnt positional embedding."""

    def __init__(self, dim, seq_len, depth, heads, mlp_mult, dropout, pos_emb):
        super().__init__()
        if pos_emb == "scalar":  # the public code: one scalar per position, all channels
            self.pos = nn.Parameter(torch.randn(seq_len, 1))
        else:
            self.pos = nn.Parameter(torch.randn(seq_len, dim) * 0.02)
        self.layers = nn.Sequential(*[_Layer(dim, heads, mlp_mult, dropout) for _ in range(depth)])

    def forward(self, x):  # (B * blocks, n, dim)
        return self.layers(x + self.pos[: x.shape[1]])


class _Aggregate(nn.Module):
    """3x3 conv to the next width, LayerNorm over channels, 3x3 max pool stride 2."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.conv = nn.Conv2d(dim_in, dim_out, 3, padding=1)
        self.norm = nn.LayerNorm(dim_out)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)

    def forward(self, x):  # (B, H, W, C) -> (B, H/2, W/2, C')
        x = self.norm(self.conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1))
        return self.pool(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


def _to_blocks(x, n):  # (B, n*h, n*w, C) -> (B*n*n, h*w, C)
    b, hh, ww, c = x.shape
    h, w = hh // n, ww // n
    return x.reshape(b, n, h, n, w, c).permute(0, 1, 3, 2, 4, 5).reshape(b * n * n, h * w, c), (h, w)


def _from_blocks(x, n, hw):  # inverse of _to_blocks
    (h, w), c = hw, x.shape[-1]
    b = x.shape[0] // (n * n)
    return x.reshape(b, n, n, h, w, c).permute(0, 1, 3, 2, 4, 5).reshape(b, n * h, n * w, c)


class _HTNet(nn.Module):
    def __init__(self, in_channels: int, n_classes: int, image_size: int, patch_size: int, dim: int,
                 heads: int, levels: int, block_repeats, mlp_mult: int = 4, dropout: float = 0.0,
                 pos_emb: str = "scalar"):
        super().__init__()
        fmap, blocks = image_size // patch_size, 2 ** (levels - 1)
        if image_size % patch_size or fmap % blocks:
            raise ValueError(f"HTNet: image size {image_size} must be a multiple of patch_size ({patch_size}) "
                             f"times 2**(levels-1) ({blocks})")
        if len(block_repeats) != levels:
            raise ValueError(f"HTNet: block_repeats {tuple(block_repeats)} must have {levels} entries")
        if pos_emb not in POS_EMB:
            raise ValueError(f"HTNet: pos_emb must be one of {', '.join(POS_EMB)}, not {pos_emb!r}")
        self.patch, self.levels = patch_size, levels
        seq_len = (fmap // blocks) ** 2  # the same at every level
        dims = [dim * 2 ** i for i in range(levels)]
        self.embed = nn.Linear(patch_size * patch_size * in_channels, dims[0])
        self.transformers = nn.ModuleList(
            _Transformer(d, seq_len, r, heads * 2 ** i, mlp_mult, dropout, pos_emb)
            for i, (d, r) in enumerate(zip(dims, block_repeats)))
        self.aggregates = nn.ModuleList(_Aggregate(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.norm, self.fc = nn.LayerNorm(dims[-1]), nn.Linear(dims[-1], n_classes)

    def _patches(self, img):  # (B, C, H, W) -> (B, H/p, W/p, p*p*C), (row, col, channel) order
        b, c, hh, ww = img.shape
        p = self.patch
        x = img.reshape(b, c, hh // p, p, ww // p, p).permute(0, 2, 4, 3, 5, 1)
        return x.reshape(b, hh // p, ww // p, p * p * c)

    def forward(self, img):
        x = self.embed(self._patches(img))
        for i, transformer in enumerate(self.transformers):
            n = 2 ** (self.levels - 1 - i)
            blocks, hw = _to_blocks(x, n)
            x = _from_blocks(transformer(blocks), n, hw)
            if i < len(self.aggregates):
                x = self.aggregates[i](x)
        return self.fc(self.norm(x).mean(dim=(1, 2)))


@MODELS.register()
class HTNet(TorchClassifier):
    """HTNet, public configuration (see the module docstring for its surprises).

    Args:
        patch_size, dim, heads, levels, block_repeats, mlp_mult, dropout,
            pos_emb: architecture (defaults: the public configuration 7, 256,
            3, 3, (2, 2, 10), 4, 0.0, "scalar").
        epochs, lr, batch_size, optimizer, loss: training (public: 800, 5e-5,
            256, Adam, cross-entropy).
    """

    accepts = frozenset({"flow_image"})

    def __init__(self, patch_size: int = 7, dim: int = 256, heads: int = 3, levels: int = 3,
                 block_repeats: tuple[int, ...] = (2, 2, 10), mlp_mult: int = 4, dropout: float = 0.0,
                 pos_emb: str = "scalar", epochs: int = 800, lr: float = 5e-5, batch_size: int = 256,
                 weight_decay: float = 0.0, optimizer: str = "adam", loss: str = "ce",
                 seed: int = 0, device: str = "cpu"):
        super().__init__(epochs, lr, batch_size, weight_decay, optimizer, loss, seed, device)
        self.patch_size = patch_size
        self.dim = dim
        self.heads = heads
        self.levels = levels
        self.block_repeats = block_repeats
        self.mlp_mult = mlp_mult
        self.dropout = dropout
        self.pos_emb = pos_emb

    def build(self, in_shape, n_classes):
        c, h, w = in_shape
        if h != w:
            raise ValueError(f"HTNet needs a square input, got {h}x{w}")
        return _HTNet(c, n_classes, h, self.patch_size, self.dim, self.heads, self.levels,
                      tuple(int(r) for r in self.block_repeats), self.mlp_mult, self.dropout, self.pos_emb)


@MODELS.register()
class HTNetSmall(HTNet):
    """HTNet whose attention sees real sequences (49 tokens per block at 28x28):
    patch 2, dim 32, heads 2, 2 levels, repeats (2, 2), vector positional
    embedding; the training defaults of ``htnet`` (see the module docstring)."""

    def __init__(self, patch_size: int = 2, dim: int = 32, heads: int = 2, levels: int = 2,
                 block_repeats: tuple[int, ...] = (2, 2), mlp_mult: int = 4, dropout: float = 0.0,
                 pos_emb: str = "vector", epochs: int = 800, lr: float = 5e-5, batch_size: int = 256,
                 weight_decay: float = 0.0, optimizer: str = "adam", loss: str = "ce",
                 seed: int = 0, device: str = "cpu"):
        super().__init__(patch_size, dim, heads, levels, block_repeats, mlp_mult, dropout, pos_emb,
                         epochs, lr, batch_size, weight_decay, optimizer, loss, seed, device)

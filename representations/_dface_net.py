"""D-FACE's C-VQ-VAE facial action tokenizer (Deng et al., section 3.1), in plain torch.

    I1, I2 -> patch embedding -> spatial Transformer (per frame)
           -> causal Transformer across the pair (per patch position)
           -> linear reduction to the code dimension -> CNN to an h x w map: E1, E2
    D = E2 - E1 -> nearest code (index map M) -> NSVQ noise substitution while training
    -> up-projection P -> decoder: spatial Transformer over sg[frame-1 patch tokens]
       cross-attending to the h*w action tokens -> pixels of I2; loss = pixel MSE.

Facts taken from LAPA, the latent-action model D-FACE adapts (``shared/papers/README.md``):
NSVQ with no commitment loss, periodic replacement of unused codes, pixel MSE only,
and for 16 tokens a 16x16 patch grid reduced to 4x4 by two stride-2 convolutions
(generally: one stride-2 convolution per halving, a stride-1 one when the grid
already has the token map's size). The decoder's frame-1 input is the stop-gradient
patch embedding of I1, as in LAPA's public code (the paper writes ``sg[E1]``).

Project choices, recorded in :class:`NetConfig` (and so in every checkpoint):
learnable absolute positional embeddings on the patch grid and no time
embedding: the causal mask alone tells the two frames apart (frame 1 sees
itself, frame 2 sees both), so two identical frames give ``E1 == E2`` exactly and
the "no action" map is, for every face, the code nearest the origin at every
position (LAPA's causal position generators make it position-dependent instead);
data-dependent codebook initialisation and replacement of dead codes by motion
vectors of the current batch (see :class:`NSVQ`); ``residual=True`` (the CPU presets) makes the decoder predict ``I2 - I1`` added to
``I1``: the loss is still the pixel MSE on I2, but a two-core minute of training
cannot make a pixel autoencoder accurate enough for 1-pixel motions to dominate
that MSE, and the skip lets the action tokens carry the motion from the start.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CHECKPOINT_FORMAT = "mer-benchmark/dface-tokenizer/1"


@dataclass(frozen=True)
class NetConfig:
    """Architecture of the tokenizer (everything a checkpoint needs to be rebuilt)."""

    image_size: int = 64
    channels: int = 1  # 1: grayscale input (SAMM is grayscale); 3: BGR
    patch: int = 8
    hidden: int = 64
    heads: int = 4
    spatial_depth: int = 2
    temporal_depth: int = 1
    decoder_depth: int = 2
    mlp_ratio: int = 4
    code_dim: int = 32
    codebook_size: int = 32
    token_h: int = 4
    token_w: int = 4
    residual: bool = True

    @property
    def grid(self) -> int:
        return self.image_size // self.patch

    @property
    def n_tokens(self) -> int:
        return self.token_h * self.token_w

    def validate(self) -> None:
        if self.image_size % self.patch:
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch {self.patch}")
        for side in (self.token_h, self.token_w):
            ratio = self.grid / side
            if ratio < 1 or ratio != 2 ** round(math.log2(ratio)):
                raise ValueError(f"patch grid {self.grid} must be the token map side {side} times a power of 2")
        if self.hidden % self.heads:
            raise ValueError(f"hidden {self.hidden} is not divisible by heads {self.heads}")


# The paper gives hidden 512 and code dimension 32 (codebook 32 x 32, 4x4 tokens); the
# 256 px RGB input, patch 16 (16x16 grid -> two stride-2 convs), 8 heads of 64 and depth 6
# (encoder, causal and decoder Transformers) are those of D-FACE's public training script.
PRESETS = {
    "paper": NetConfig(image_size=256, channels=3, patch=16, hidden=512, heads=8, spatial_depth=6,
                       temporal_depth=6, decoder_depth=6, residual=False),
    "small": NetConfig(),  # 64x64 grayscale, 8x8 patch grid -> one stride-2 conv -> 4x4; ~0.3 M parameters
    "tiny": NetConfig(image_size=32, channels=1, patch=4, hidden=32, heads=2, spatial_depth=1,
                      temporal_depth=1, decoder_depth=1, mlp_ratio=2, code_dim=16, codebook_size=16),
}


def preset_config(preset: str, **overrides) -> NetConfig:
    if preset not in PRESETS:
        raise ValueError(f"unknown D-FACE preset {preset!r} (known: {', '.join(PRESETS)})")
    cfg = dataclasses.replace(PRESETS[preset], **overrides)
    cfg.validate()
    return cfg


# --------------------------------------------------------------------------- layers


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, context_dim: int | None = None):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(context_dim or dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x, context=None, causal: bool = False):
        B, N, D = x.shape
        ctx = x if context is None else context
        q = self.q(x).view(B, N, self.heads, -1).transpose(1, 2)
        k, v = self.kv(ctx).view(B, ctx.shape[1], 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return self.out(o.transpose(1, 2).reshape(B, N, D))


class Block(nn.Module):
    """Pre-norm Transformer block; with ``cross`` it also attends to a context."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 4, cross: bool = False):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm_c = nn.LayerNorm(dim) if cross else None
        self.cross = Attention(dim, heads) if cross else None
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * mlp_ratio), nn.GELU(), nn.Linear(dim * mlp_ratio, dim))

    def forward(self, x, context=None, causal: bool = False):
        x = x + self.attn(self.norm1(x), causal=causal)
        if self.cross is not None:
            x = x + self.cross(self.norm_c(x), context)
        return x + self.mlp(self.norm2(x))


class NSVQ(nn.Module):
    """Codebook with nearest-code lookup, noise substitution and dead-code replacement.

    NSVQ (Vali & Baeckstroem, 2022): while training, the quantized vector is
    replaced by ``d + ||d - z|| / ||v|| * v`` with ``v ~ N(0, I)``, per vector. The
    encoder gets the gradient of ``d`` unchanged (no straight-through estimator)
    and the codebook gets it through the norm of the quantization error, so no
    codebook or commitment loss is needed.
    """

    def __init__(self, size: int, dim: int):
        super().__init__()
        self.codebook = nn.Parameter(torch.randn(size, dim))
        self.register_buffer("usage", torch.zeros(size))  # uses since the last replacement
        self.register_buffer("batches", torch.zeros(()))
        self.register_buffer("initialized", torch.tensor(False))

    def nearest(self, d: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code (squared Euclidean distance) for every vector of ``d``."""
        flat = d.detach().reshape(-1, d.shape[-1])
        cb = self.codebook.detach()
        dist = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ cb.t() + cb.pow(2).sum(1)[None]
        return dist.argmin(1).view(d.shape[:-1])

    def substitute(self, d: torch.Tensor, idx: torch.Tensor, generator=None) -> torch.Tensor:
        z = self.codebook[idx]
        v = torch.randn(d.shape, generator=generator, device=d.device, dtype=d.dtype)
        scale = (d - z).norm(dim=-1, keepdim=True) / (v.norm(dim=-1, keepdim=True) + 1e-12)
        return d + scale * v

    @torch.no_grad()
    def record(self, idx: torch.Tensor) -> None:
        self.usage += torch.bincount(idx.flatten(), minlength=self.usage.numel()).to(self.usage)
        self.batches += 1

    @torch.no_grad()
    def init_from(self, d: torch.Tensor, generator=None) -> None:
        """Data-dependent start: codes = random encoder outputs (first training batch).

        A N(0, I) codebook sits far from the initially tiny motion vectors, and
        NSVQ then feeds the decoder noise of that size, which teaches it to ignore
        the action tokens; starting from data puts the codes where ``D`` is."""
        flat = d.detach().reshape(-1, d.shape[-1])
        pick = torch.randint(len(flat), (self.codebook.shape[0],), generator=generator)
        self.codebook.copy_(flat[pick.to(flat.device)] + 1e-3 * flat.std() * torch.randn(
            self.codebook.shape, generator=generator).to(flat))
        self.initialized.fill_(True)

    @torch.no_grad()
    def replace_dead(self, candidates: torch.Tensor, threshold: float = 0.01, generator=None) -> int:
        """Replace codes used less than ``threshold`` times per batch since the last
        call; returns how many, and resets the counters.

        NSVQ and LAPA copy used codes (plus noise) into the unused ones; here the
        replacements are random motion vectors of the current batch
        (``candidates``, (M, code_dim)), which also splits busy regions of the
        code space but follows the data when the encoder drifts."""
        rate = self.usage / self.batches.clamp(min=1)
        dead = torch.where(rate < threshold)[0]
        n = len(dead)
        if n:
            flat = candidates.detach().reshape(-1, candidates.shape[-1])
            pick = torch.randint(len(flat), (n,), generator=generator).to(flat.device)
            self.codebook[dead] = flat[pick].to(self.codebook)
        self.usage.zero_()
        self.batches.zero_()
        return n


def replacement_due(step: int) -> bool:
    """LAPA's schedule: every 10 steps below 100, every 100 below 1000, every 500 below 5000."""
    return step > 0 and ((step < 100 and step % 10 == 0) or (step < 1000 and step % 100 == 0)
                         or (step <= 5000 and step % 500 == 0))


class CVQVAE(nn.Module):
    """The tokenizer. Inputs are float tensors (B, C, S, S) scaled to about [-0.5, 0.5]."""

    def __init__(self, cfg: NetConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        pdim, g = cfg.channels * cfg.patch ** 2, cfg.grid
        self.patch_embed = nn.Linear(pdim, cfg.hidden)
        self.pos = nn.Parameter(torch.randn(1, g * g, cfg.hidden) * 0.02)
        self.spatial = nn.ModuleList(Block(cfg.hidden, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.spatial_depth))
        self.temporal = nn.ModuleList(Block(cfg.hidden, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.temporal_depth))
        self.reduce = nn.Linear(cfg.hidden, cfg.code_dim)
        self.cnn = self._reduction_cnn(cfg)
        self.quant = NSVQ(cfg.codebook_size, cfg.code_dim)
        self.up = nn.Linear(cfg.code_dim, cfg.hidden)  # P in the paper
        self.action_pos = nn.Parameter(torch.randn(1, cfg.n_tokens, cfg.hidden) * 0.02)
        self.decoder = nn.ModuleList(Block(cfg.hidden, cfg.heads, cfg.mlp_ratio, cross=True)
                                     for _ in range(cfg.decoder_depth))
        self.to_pixels = nn.Sequential(nn.LayerNorm(cfg.hidden), nn.Linear(cfg.hidden, pdim))
        if cfg.residual:  # start as "I2 = I1" so that early training is spent on motion
            nn.init.zeros_(self.to_pixels[1].weight)
            nn.init.zeros_(self.to_pixels[1].bias)

    @staticmethod
    def _reduction_cnn(cfg: NetConfig) -> nn.Sequential:
        """One 3x3 stride-2 convolution per halving of each side (a stride-1 one if none)."""
        halve = [int(round(math.log2(cfg.grid / side))) for side in (cfg.token_h, cfg.token_w)]
        layers = []
        for i in range(max(*halve, 1)):
            if i:
                layers.append(nn.ReLU())
            stride = tuple(2 if i < n else 1 for n in halve)
            layers.append(nn.Conv2d(cfg.code_dim, cfg.code_dim, 3, stride=stride, padding=1))
        return nn.Sequential(*layers)

    # -------------------------------------------------------------- pieces

    def patchify(self, img: torch.Tensor) -> torch.Tensor:
        p = self.cfg.patch
        B, C, H, W = img.shape
        x = img.view(B, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(B, (H // p) * (W // p), C * p * p)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        c, p, g = self.cfg.channels, self.cfg.patch, self.cfg.grid
        B = x.shape[0]
        return x.view(B, g, g, c, p, p).permute(0, 3, 1, 4, 2, 5).reshape(B, c, g * p, g * p)

    def encode(self, i1: torch.Tensor, i2: torch.Tensor):
        """Returns (frame-1 patch tokens, E1, E2); E as (B, h*w, code_dim)."""
        B, g, cfg = i1.shape[0], self.cfg.grid, self.cfg
        tok = self.patch_embed(self.patchify(torch.cat([i1, i2]))) + self.pos  # (2B, N, hidden)
        first_tokens = tok[:B]
        x = tok
        for blk in self.spatial:
            x = blk(x)
        x = x.view(2, B * g * g, -1).transpose(0, 1)  # (B*N, T=2, hidden)
        for blk in self.temporal:
            x = blk(x, causal=True)
        e = self.reduce(x).view(B, g, g, 2, cfg.code_dim).permute(3, 0, 4, 1, 2)
        e = self.cnn(e.reshape(2 * B, cfg.code_dim, g, g))  # (2B, code, h, w)
        e = e.flatten(2).transpose(1, 2).reshape(2, B, cfg.n_tokens, cfg.code_dim)
        return first_tokens, e[0], e[1]

    def motion(self, i1: torch.Tensor, i2: torch.Tensor):
        """(frame-1 tokens, D = E2 - E1 (B, h*w, code_dim))."""
        first, e1, e2 = self.encode(i1, i2)
        return first, e2 - e1

    def decode(self, first_tokens: torch.Tensor, actions: torch.Tensor, i1: torch.Tensor) -> torch.Tensor:
        """Reconstruct I2 from sg[frame-1 tokens] and (B, h*w, code_dim) action vectors."""
        ctx = self.up(actions) + self.action_pos
        x = first_tokens.detach()
        for blk in self.decoder:
            x = blk(x, context=ctx)
        out = self.unpatchify(self.to_pixels(x))
        return i1 + out if self.cfg.residual else out

    def forward(self, i1: torch.Tensor, i2: torch.Tensor, quantize: bool = True, generator=None) -> dict:
        """Training pass: NSVQ substitution in train mode, hard codes in eval mode."""
        first, d = self.motion(i1, i2)
        idx = self.quant.nearest(d)
        if not quantize:
            z = d
        elif self.training:
            if not bool(self.quant.initialized):
                self.quant.init_from(d, generator)
                idx = self.quant.nearest(d)
            z = self.quant.substitute(d, idx, generator)
            self.quant.record(idx)
        else:
            z = self.quant.codebook[idx]
        recon = self.decode(first, z, i1)
        return {"recon": recon, "loss": F.mse_loss(recon, i2), "indices": idx, "d": d}

    @torch.no_grad()
    def tokenize(self, i1: torch.Tensor, i2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(indices (B, h*w), continuous D (B, h*w, code_dim)), no noise."""
        _, d = self.motion(i1, i2)
        return self.quant.nearest(d), d


# --------------------------------------------------------------------------- training


def to_input(pairs_u8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (B, 2, C, S, S) -> two float tensors in [-0.5, 0.5]."""
    x = pairs_u8.float().div_(255.0).sub_(0.5)
    return x[:, 0], x[:, 1]


@torch.enable_grad()  # also when called under no_grad (the default checkpoint is built inside transform)
def train_tokenizer(net: CVQVAE, pairs: np.ndarray, steps: int, batch_size: int = 32, lr: float = 1e-3,
                    seed: int = 0, replace_dead: bool = True, log_every: int = 0, log=print,
                    device: str | torch.device = "cpu", resume: dict | None = None, save_every: int = 0,
                    save=None) -> list[dict]:
    """Self-supervised training on uint8 pairs (N, 2, C, S, S): Adam, cosine decay,
    random horizontal flips, LAPA's dead-code replacement schedule. Returns the
    per-log history (step, loss, perplexity of the codes used, codes used).

    ``save_every > 0``: ``save(state)`` after every that many steps (not the last), with the
    training state (network, optimizer, schedule, random generators, history); ``resume``: such
    a state, training goes on after its step and ends with the weights of an uninterrupted run
    (exactly, on the same platform and thread count)."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    data = torch.as_tensor(pairs)
    net.to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / max(steps, 1))))
    history, window, start = [], [], 1
    if resume is not None:
        net.load_state_dict(resume["net"])
        opt.load_state_dict(resume["opt"])
        sched.load_state_dict(resume["sched"])
        gen.set_state(resume["gen"])
        torch.set_rng_state(resume["torch_rng"])
        if resume.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(resume["cuda_rng"])
        # interned keys, as _summary's literals: the pickled checkpoint (its memo) is then byte-identical
        history = [{sys.intern(k): v for k, v in rec.items()} for rec in resume["history"]]
        window, start = list(resume["window"]), resume["step"] + 1
    for step in range(start, steps + 1):
        idx = torch.randint(len(data), (min(batch_size, len(data)),), generator=gen)
        batch = data[idx]
        flip = torch.rand(len(idx), generator=gen) < 0.5
        batch[flip] = batch[flip].flip(-1)
        i1, i2 = to_input(batch.to(device))
        out = net(i1, i2, generator=gen if str(device) == "cpu" else None)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        sched.step()
        window.append((out["loss"].item(), out["indices"].detach().cpu()))
        replaced = net.quant.replace_dead(out["d"], generator=gen) if replace_dead and replacement_due(step) else 0
        if (log_every and step % log_every == 0) or step == steps:
            rec = _summary(step, window, net.cfg.codebook_size, replaced)
            history.append(rec)
            window = []
            if log_every:
                log(f"step {step}/{steps}  mse {rec['loss']:.5f}  perplexity {rec['perplexity']:.1f}  "
                    f"codes used {rec['codes_used']}")
        if save is not None and save_every and step % save_every == 0 and step < steps:
            save({"step": step, "net": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
                  "opt": opt.state_dict(), "sched": sched.state_dict(), "gen": gen.get_state(),
                  "torch_rng": torch.get_rng_state(),
                  "cuda_rng": torch.cuda.get_rng_state_all() if str(device).startswith("cuda") else None,
                  "history": list(history), "window": list(window)})
    net.eval()
    return history


def _summary(step, window, k, replaced) -> dict:
    counts = torch.bincount(torch.cat([w[1].flatten() for w in window]), minlength=k).float()
    p = counts / counts.sum()
    ppl = float(torch.exp(-(p[p > 0] * p[p > 0].log()).sum()))
    return {"step": step, "loss": float(np.mean([w[0] for w in window])), "perplexity": ppl,
            "codes_used": int((counts > 0).sum()), "replaced": int(replaced)}


# --------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: Path, net: CVQVAE, meta: dict) -> str:
    """Write ``{format, config, state (fp32), meta}`` atomically; returns its sha256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {"format": CHECKPOINT_FORMAT, "config": dataclasses.asdict(net.cfg),
            "state": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}, "meta": meta}
    buf = io.BytesIO()
    torch.save(blob, buf)
    tmp = path.with_name(f".{path.name}.tmp-{id(buf)}")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(path)
    return hashlib.sha256(buf.getvalue()).hexdigest()


def load_checkpoint(path: Path, device: str | torch.device = "cpu") -> tuple[CVQVAE, dict]:
    """(eval-mode network, meta); ``weights_only`` loading: no code runs from the file."""
    blob = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a D-FACE tokenizer checkpoint ({CHECKPOINT_FORMAT})")
    net = CVQVAE(NetConfig(**blob["config"]))
    net.load_state_dict(blob["state"])
    return net.to(device).eval(), blob["meta"]


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()

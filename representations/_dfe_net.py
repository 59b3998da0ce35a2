"""DFE's RVQ-VAE (Tran et al., section 3.2): expression vector -> L tokens from one shared codebook.

    psi (50) -> reshape (T=10, d=5) -> linear d->width + learned positions -> Transformer
    encoder (6 layers, 4 heads, width 128) -> mean pool -> linear -> z0 (D=50)
    -> residual VQ, L=4 stages over one shared codebook of K=64 entries
       (vector-quantize-pytorch ``ResidualVQ(shared_codebook=True)``, codebook learned by
       gradient so the orthogonality loss acts on it)
    -> single linear decoder D -> 50

Loss (eq. 5-7): ||psi - psi_hat||^2 + beta * commitment (the library's per-stage loss)
+ lambda_orth * mean_{i != j} (e_i . e_j)^2 + lambda_l1 * |psi_hat|_1. Adam.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn


@dataclasses.dataclass(frozen=True)
class NetConfig:
    in_dim: int = 50
    T: int = 10
    width: int = 128
    depth: int = 6
    heads: int = 4
    ff: int = 256  # not given by the paper; 2 x width keeps CPU training short
    code_dim: int = 50
    stages: int = 4
    codebook_size: int = 64
    beta: float = 0.25
    lambda_orth: float = 1.0
    lambda_l1: float = 1e-4

    def __post_init__(self):
        if self.in_dim % self.T:
            raise ValueError(f"in_dim {self.in_dim} is not divisible by T={self.T}")


PRESETS = {
    "paper": NetConfig(),
    "tiny": NetConfig(width=16, depth=1, heads=2, ff=32),  # tests only
}


class RVQVAE(nn.Module):
    def __init__(self, cfg: NetConfig):
        super().__init__()
        from vector_quantize_pytorch import ResidualVQ

        self.cfg = cfg
        d = cfg.in_dim // cfg.T
        self.proj = nn.Linear(d, cfg.width)
        self.pos = nn.Parameter(torch.randn(1, cfg.T, cfg.width) * 0.02)
        layer = nn.TransformerEncoderLayer(cfg.width, cfg.heads, cfg.ff, 0.0, activation="gelu", batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.depth, enable_nested_tensor=False)
        self.to_latent = nn.Linear(cfg.width, cfg.code_dim)
        self.rvq = ResidualVQ(dim=cfg.code_dim, num_quantizers=cfg.stages, codebook_size=cfg.codebook_size,
                              shared_codebook=True, learnable_codebook=True, ema_update=False,
                              commitment_weight=cfg.beta)
        self.decoder = nn.Linear(cfg.code_dim, cfg.in_dim)

    @property
    def codebook(self) -> torch.Tensor:
        """(K, D) the shared codebook."""
        return self.rvq.codebooks[0]

    def encode(self, psi: torch.Tensor) -> torch.Tensor:
        x = self.proj(psi.view(len(psi), self.cfg.T, -1)) + self.pos
        return self.to_latent(self.encoder(x).mean(1))

    def forward(self, psi: torch.Tensor):
        """(psi_hat, indices (B, L), per-stage commitment losses (L,))."""
        zq, idx, commit = self.rvq(self.encode(psi))
        return self.decoder(zq), idx, commit

    def loss(self, psi: torch.Tensor) -> tuple[torch.Tensor, dict]:
        psi_hat, _idx, commit = self(psi)
        rec = (psi - psi_hat).pow(2).sum(1).mean()
        e = self.codebook
        gram = e @ e.T
        k = len(e)
        orth = (gram.pow(2).sum() - gram.diagonal().pow(2).sum()) / (k * (k - 1))
        l1 = psi_hat.abs().sum(1).mean()
        total = rec + commit.sum() + self.cfg.lambda_orth * orth + self.cfg.lambda_l1 * l1
        parts = {"rec": rec, "commit": commit.sum(), "orth": orth, "l1": l1}
        return total, {k: float(v.detach()) for k, v in parts.items()}

    @torch.no_grad()
    def tokenize(self, psi: torch.Tensor) -> torch.Tensor:
        """(B, L) int64 code indices."""
        return self.rvq(self.encode(psi))[1]

    @torch.no_grad()
    def stage_reconstructions(self, psi: torch.Tensor) -> list[torch.Tensor]:
        """Decoded expression after 1, 2, ..., L stages (the partial sums of the codes)."""
        idx = self.tokenize(psi)
        cb = self.codebook
        partial = torch.cumsum(cb[idx], dim=1)  # (B, L, D)
        return [self.decoder(partial[:, i]) for i in range(idx.shape[1])]

    @torch.no_grad()
    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Decoded expression vectors of codebook entries (K, D) -> (K, in_dim), minus the decoder bias
        so each row is the code's own additive contribution."""
        return self.decoder(codes) - self.decoder.bias


def train(net: RVQVAE, data: np.ndarray, steps: int, batch_size: int, lr: float, seed: int,
          log=None, log_every: int = 0) -> list[dict]:
    """Adam on random batches of ``data`` (N, in_dim); returns the loss history."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x = torch.as_tensor(np.asarray(data, np.float32))
    if len(x) == 0:
        raise ValueError("no expression vectors to train the RVQ-VAE on")
    _init_codebook(net, x, gen)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    history = []
    for step in range(1, steps + 1):
        idx = torch.randint(len(x), (min(batch_size, len(x)),), generator=gen)
        loss, parts = net.loss(x[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if log_every and (step % log_every == 0 or step == steps):
            history.append({"step": step, **{k: round(v, 6) for k, v in parts.items()}})
            if log:
                log(f"step {step}: " + " ".join(f"{k} {v:.4g}" for k, v in parts.items()))
    net.eval()
    return history


@torch.no_grad()
def _init_codebook(net: RVQVAE, x: torch.Tensor, gen: torch.Generator) -> None:
    """Small random codebook (std 0.05). The library's init, or codes copied from encoded
    training vectors, started the orthogonality term large; it then shrank the codebook and
    stage 1 used a single code (reconstruction barely below the input energy after 300 steps,
    against 34 % of it with this init, on the CASME II training frames of one fold)."""
    del x
    emb = net.rvq.layers[0]._codebook.embed
    emb.copy_(torch.randn(emb.shape, generator=gen) * 0.05)


def state_arrays(net: RVQVAE) -> dict[str, np.ndarray]:
    return {f"net.{k}": v.detach().cpu().numpy() for k, v in net.state_dict().items()}


def from_arrays(cfg: NetConfig, arrays: dict[str, np.ndarray]) -> RVQVAE:
    net = RVQVAE(cfg)
    state = {k[4:]: torch.as_tensor(v) for k, v in arrays.items() if k.startswith("net.")}
    net.load_state_dict(state)
    return net.eval()

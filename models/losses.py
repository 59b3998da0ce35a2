"""Training losses for the torch models, selected by name (``--model-param loss=NAME``).

=================  ==========================================================================
name               loss
=================  ==========================================================================
``ce``             cross-entropy (the default of STSTNet, OFF-ApexNet, HTNet, Swin, PoolFormer-m48)
``weighted-ce``    cross-entropy with inverse-frequency class weights ``n / (K * n_c)``
                   computed on the training labels of the fold (a class absent from the fold
                   counts as 1 so its weight stays finite, and ``n`` is the sum of these
                   clamped counts)
``focal``          focal loss (Lin et al., 2017) with gamma 2 and the same inverse-frequency
                   class weights as alpha: the "alpha-weighting, gamma = 2.0" of the
                   Preprocessing Paradox paper (its choice for ViT and PoolFormer-m36)
``focal-unweighted``  focal loss, gamma 2, no alpha
=================  ==========================================================================

Every loss is a mean over the mini-batch of per-sample terms. The weighted
variants follow ``torch.nn.CrossEntropyLoss(weight=...)``: weighted cross-entropy
divides by the sum of the sample weights; the focal losses divide by the batch
size (the focal-loss convention), so alpha scales the gradient.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LOSSES = ("ce", "weighted-ce", "focal", "focal-unweighted")


def inverse_frequency_weights(y: torch.Tensor, n_classes: int) -> torch.Tensor:
    """``n / (K * n_c)`` per class, ``n_c`` clamped at 1 (classes missing from the fold), ``n = sum n_c``."""
    counts = torch.bincount(y, minlength=n_classes).float().clamp(min=1)
    return (counts.sum() / (n_classes * counts)).to(y.device)


class FocalLoss(nn.Module):
    """``-alpha_y (1 - p_y)^gamma log p_y``, averaged over the batch.

    Args:
        gamma: focusing parameter; 0 gives (alpha-weighted) cross-entropy summed
            over the batch and divided by its size.
        alpha: optional per-class weights (tensor of length K).
    """

    def __init__(self, gamma: float = 2.0, alpha: torch.Tensor | None = None):
        super().__init__()
        self.gamma = gamma
        self.register_buffer("alpha", alpha if alpha is None else alpha.float())

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(logits.float(), dim=1).gather(1, target[:, None]).squeeze(1)
        loss = -((1 - logp.exp()).clamp(min=0) ** self.gamma) * logp
        if self.alpha is not None:
            loss = loss * self.alpha[target]
        return loss.mean()


def make_loss(name: str, y: torch.Tensor, n_classes: int) -> nn.Module:
    """The loss called ``name``; class weights come from the training labels ``y``."""
    if name == "ce":
        return nn.CrossEntropyLoss()
    if name == "weighted-ce":
        return nn.CrossEntropyLoss(weight=inverse_frequency_weights(y, n_classes))
    if name == "focal":
        return FocalLoss(2.0, inverse_frequency_weights(y, n_classes))
    if name == "focal-unweighted":
        return FocalLoss(2.0)
    raise ValueError(f"unknown loss {name!r} (known: {', '.join(LOSSES)})")

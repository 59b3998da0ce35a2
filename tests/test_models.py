"""Models: architecture fidelity, a real learning check, selection modes."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.base import EpochChoiceSet
from models.ststnet import STSTNet, _STSTNet
from tests.conftest import toy_images


def _three_stream_reference(net: _STSTNet, x: torch.Tensor, training: bool) -> torch.Tensor:
    """The published layout: three separate streams, run from slices of the fused weights."""
    outs, start = [], 0
    for c in _STSTNet.STREAMS:
        sl = slice(start, start + c)
        h = torch.relu(F.conv2d(x, net.conv.weight[sl], net.conv.bias[sl], padding=2))
        h = F.batch_norm(h, net.bn.running_mean[sl].clone(), net.bn.running_var[sl].clone(),
                         net.bn.weight[sl], net.bn.bias[sl], training=training, eps=net.bn.eps)
        outs.append(F.max_pool2d(h, 3, 3, padding=1))
        start += c
    return net.fc(F.avg_pool2d(torch.cat(outs, 1), 2).flatten(1))


@pytest.mark.parametrize("training", [False, True])
def test_fused_ststnet_equals_three_streams(training):
    torch.manual_seed(0)
    net = _STSTNet(3, 3, (28, 28))
    with torch.no_grad():
        net.bn.running_mean.uniform_(-1, 1)
        net.bn.running_var.uniform_(0.5, 2)
        net.bn.weight.uniform_(-2, 2)
    net.drop.p = 0.0
    net.train(training)
    x = torch.rand(8, 3, 28, 28) * 255
    with torch.no_grad():
        ref = _three_stream_reference(net, x, training)
        assert torch.allclose(net(x), ref, atol=1e-4)


def test_ststnet_has_published_shape():
    net = _STSTNet(3, 3, (28, 28))
    assert net.fc.in_features == 400
    assert sum(p.numel() for p in net.parameters()) == 16 * 27 + 16 + 32 + 400 * 3 + 3




def test_ststnet_overfits_a_handful_of_samples():
    X, y = toy_images()
    m = STSTNet(epochs=150, lr=1e-2, batch_size=12, seed=0).fit(X, y, n_classes=3)
    assert (m.predict_proba(X).argmax(1) == y).mean() == 1.0


def test_training_is_deterministic_on_cpu():
    X, y = toy_images()
    a = STSTNet(epochs=5, lr=1e-3, seed=7).fit(X, y, 3).predict_proba(X)
    b = STSTNet(epochs=5, lr=1e-3, seed=7).fit(X, y, 3).predict_proba(X)
    np.testing.assert_array_equal(a, b)


def test_selection_keeps_best_epoch_weights():
    X, y = toy_images()
    m = STSTNet(epochs=30, lr=1e-2, batch_size=12, seed=0).fit(X, y, 3, selection=EpochChoiceSet(X, y, "accuracy"))
    assert len(m.history_) == 30
    assert m.history_[m.best_epoch_ - 1] == max(m.history_)
    assert (m.predict_proba(X).argmax(1) == y).mean() == pytest.approx(max(m.history_))


def test_unknown_optimizer_and_loss_are_clear_errors():
    X, y = toy_images()
    with pytest.raises(ValueError, match="unknown optimizer"):
        STSTNet(epochs=1, optimizer="lbfgsx").fit(X, y, 3)
    with pytest.raises(ValueError, match="unknown loss"):
        STSTNet(epochs=1, loss="hinge").fit(X, y, 3)


def test_by_class_batch_order_is_unshuffled_and_grouped():
    m = STSTNet(batch_size=4, batch_order="by-class")
    y = torch.tensor([2, 0, 1, 0, 2, 1, 0])
    batches = [b.tolist() for b in m._batches(y, torch.Generator().manual_seed(0))]
    assert batches == [[1, 3, 6, 2], [5, 0, 4]]
    shuffled = STSTNet(batch_size=4)._batches(y, torch.Generator().manual_seed(0))
    assert sorted(torch.cat(shuffled).tolist()) == list(range(7))
    with pytest.raises(ValueError, match="batch_order"):
        STSTNet(batch_order="random")._batches(y, torch.Generator())

"""The model zoo: OFF-ApexNet, HTNet, timm transformers, SVM, losses, frame inputs.

Every trainable model is checked to memorise a handful of random samples (a
real learning test); the full-size timm and HTNet configurations are only
counted, on the meta device (no memory, no time).
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models import MODELS
from models.base import aggregate_frames, frames_to_samples
from models.losses import FocalLoss, make_loss
from representations.base import KINDS
from tests.conftest import toy_images

NEW = ["offapexnet", "htnet", "htnet-small", "vit", "swin", "poolformer_m36", "poolformer_m48",
       "vit-tiny", "swin-tiny", "poolformer-tiny", "svm"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")




def _acc(model, X, y):
    return (model.predict_proba(X).argmax(1) == y).mean()


# ---------------------------------------------------------------- registry


@pytest.mark.parametrize("name", NEW)
def test_registered_with_declared_kinds(name):
    cls = MODELS.get(name)
    assert cls.accepts and set(cls.accepts) <= set(KINDS)


def test_flow_models_reject_other_kinds():
    assert MODELS.get("offapexnet").accepts == {"flow_image"}
    assert MODELS.get("htnet").accepts == {"flow_image"}
    assert {"image", "flow_image", "frames"} <= MODELS.get("vit").accepts
    assert "frames" not in MODELS.get("svm").accepts


# ---------------------------------------------------------------- losses


def test_weighted_ce_is_inverse_frequency():
    y = torch.tensor([0, 0, 0, 1])
    loss = make_loss("weighted-ce", y, 3)
    # counts (3, 1, 0 -> clamped to 1): n / (K * n_c) with n the clamped total, 5
    np.testing.assert_allclose(loss.weight.numpy(), [5 / 9, 5 / 3, 5 / 3], rtol=1e-6)


def test_focal_loss_matches_its_formula():
    torch.manual_seed(0)
    z, y = torch.randn(16, 3), torch.randint(0, 3, (16,))
    p = torch.softmax(z, 1)[torch.arange(16), y]
    alpha = torch.tensor([0.5, 1.0, 2.0])
    expect = (-alpha[y] * (1 - p) ** 2 * p.log()).mean()
    assert torch.allclose(FocalLoss(2.0, alpha)(z, y), expect, atol=1e-6)
    assert torch.allclose(FocalLoss(0.0)(z, y), F.cross_entropy(z, y), atol=1e-6)
    assert make_loss("focal", y, 3).alpha is not None and make_loss("focal-unweighted", y, 3).alpha is None
    with pytest.raises(ValueError, match="unknown loss"):
        make_loss("hinge", y, 3)


def test_training_with_focal_loss_and_adamw():
    X, y = toy_images()
    m = MODELS.get("offapexnet")(epochs=40, lr=1e-3, batch_size=12, loss="focal", optimizer="adamw").fit(X, y, 3)
    assert _acc(m, X, y) == 1.0


# ---------------------------------------------------------------- frames


def test_aggregate_mean_and_vote():
    logits = torch.tensor([[[2.0, 0, 0], [0, 1.0, 0], [0, 1.0, 0], [9, 9, 9]]])
    valid = torch.tensor([[True, True, True, False]])
    mean = aggregate_frames(logits, valid, "mean")
    np.testing.assert_allclose(mean[0], torch.softmax(torch.tensor([2 / 3, 2 / 3, 0]), 0).numpy(), rtol=1e-6)
    vote = aggregate_frames(logits, valid, "vote")
    assert vote[0].argmax() == 1 and vote[0].sum() == pytest.approx(1.0)
    tie = aggregate_frames(torch.tensor([[[3.0, 0, 0], [0, 1.0, 0]]]), torch.tensor([[True, True]]), "vote")
    assert tie[0].argmax() == 0  # one vote each: the mean logits decide
    with pytest.raises(ValueError, match="aggregate"):
        aggregate_frames(logits, valid, "max")


def test_frames_padding_is_dropped():
    X = np.zeros((2, 3, 1, 2, 2), np.float32)
    X[1, 2] = np.nan
    frames, labels = frames_to_samples(X, np.array([0, 1]))
    assert frames.shape == (5, 1, 2, 2) and labels.tolist() == [0, 0, 0, 1, 1]
    X[0] = np.nan
    with pytest.raises(ValueError, match="padding"):
        frames_to_samples(X, np.array([0, 1]))


@pytest.mark.parametrize("aggregate,dtype", [("mean", np.uint8), ("vote", np.float32)])
def test_frames_train_per_frame_and_predict_per_video(aggregate, dtype):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 3)
    X = rng.uniform(0, 60, (9, 3, 3, 32, 32))
    for i, label in enumerate(y):  # class shows in one channel of every frame
        X[i, :, label] += 150
    X = X.astype(dtype)  # uint8: the ``frames`` representation's dtype
    if dtype == np.float32:
        X[0, 2] = np.nan  # a shorter video
    m = MODELS.get("vit-tiny")(epochs=40, lr=1e-3, batch_size=8, aggregate=aggregate).fit(X, y, 3)
    p = m.predict_proba(X)
    assert p.shape == (9, 3) and np.allclose(p.sum(1), 1, atol=1e-5)
    assert _acc(m, X, y) == 1.0


# ---------------------------------------------------------------- OFF-ApexNet


def test_offapexnet_has_published_size_and_separate_streams():
    from models.offapexnet import _OFFApexNet

    torch.manual_seed(0)
    net = _OFFApexNet(2, 3, (28, 28))
    assert sum(p.numel() for p in net.parameters()) == 2_664_475
    x = torch.rand(4, 2, 28, 28) * 255
    feats = []
    for s in range(2):  # each stream on its own channel, from slices of the grouped weights
        h = F.max_pool2d(torch.relu(F.conv2d(x[:, s:s + 1], net.conv1.weight[6 * s:6 * s + 6],
                                             net.conv1.bias[6 * s:6 * s + 6], padding=2)), 2)
        h = F.max_pool2d(torch.relu(F.conv2d(h, net.conv2.weight[16 * s:16 * s + 16],
                                             net.conv2.bias[16 * s:16 * s + 16], padding=2)), 2)
        feats.append(h.flatten(1))
    with torch.no_grad():
        assert torch.allclose(net(x), net.head(torch.cat(feats, 1)), atol=1e-4)


def test_offapexnet_reads_u_and_v_of_cv2_flow_images():
    X, y = toy_images()
    m = MODELS.get("offapexnet")(epochs=1).fit(X, y, 3)
    X2 = X.copy()
    X2[:, 0] = 0  # strain (channel 0 in cv2 order) is not an input by default
    np.testing.assert_array_equal(m.predict_proba(X), m.predict_proba(X2))
    with pytest.raises(ValueError, match="flow_channels"):
        MODELS.get("offapexnet")(epochs=1, flow_channels=[0, 3]).fit(X, y, 3)


def test_offapexnet_overfits_a_handful_of_samples():
    X, y = toy_images()
    m = MODELS.get("offapexnet")(epochs=40, lr=1e-3, batch_size=12).fit(X, y, 3)
    assert _acc(m, X, y) == 1.0


# ---------------------------------------------------------------- HTNet


def test_htnet_public_configuration_size_on_meta_device():
    with torch.device("meta"):
        net = MODELS.get("htnet")().build((3, 28, 28), 3)
        out = net(torch.empty(2, 3, 28, 28))
    assert sum(p.numel() for p in net.parameters()) == 139_582_982
    assert out.shape == (2, 3)
    assert [t.pos.shape[0] for t in net.transformers] == [1, 1, 1]  # sequence length 1 everywhere


def _perturb_queries_keys(net):
    for m in net.modules():
        if hasattr(m, "qkv"):
            inner = m.qkv.weight.shape[0] // 3
            m.qkv.weight.data[: 2 * inner] += torch.randn_like(m.qkv.weight.data[: 2 * inner])


def test_htnet_geometry_attends_to_one_token_and_small_to_sequences():
    """The documented surprise: at 28x28 / patch 7 queries and keys do not matter."""
    from models.htnet import _HTNet

    torch.manual_seed(0)
    x = torch.rand(3, 3, 28, 28) * 255
    for kwargs, matters in ((dict(patch_size=7, dim=16, heads=3, levels=3, block_repeats=(1, 1, 1)), False),
                            (dict(patch_size=2, dim=16, heads=2, levels=2, block_repeats=(1, 1),
                                  pos_emb="vector"), True)):
        net = _HTNet(3, 3, 28, **kwargs).eval()
        with torch.no_grad():
            before = net(x)
            _perturb_queries_keys(net)
            changed = not torch.allclose(before, net(x), atol=1e-5)
        assert changed == matters


def test_htnet_small_size():
    net = MODELS.get("htnet-small")().build((3, 28, 28), 3)
    assert sum(p.numel() for p in net.parameters()) == 148_867
    assert [t.pos.shape[0] for t in net.transformers] == [49, 49]


def test_htnet_code_path_overfits():
    X, y = toy_images()
    m = MODELS.get("htnet")(dim=16, block_repeats=(1, 1, 2), epochs=60, lr=1e-3, batch_size=12).fit(X, y, 3)
    assert _acc(m, X, y) == 1.0


def test_htnet_small_overfits():
    X, y = toy_images(n_per_class=2)
    m = MODELS.get("htnet-small")(epochs=80, lr=1e-3, batch_size=6).fit(X, y, 3)
    assert _acc(m, X, y) == 1.0


def test_htnet_rejects_sizes_its_blocks_cannot_cut():
    X, y = toy_images(shape=(3, 30, 30))
    with pytest.raises(ValueError, match="multiple of patch_size"):
        MODELS.get("htnet")(epochs=1, dim=8).fit(X, y, 3)


# ---------------------------------------------------------------- timm


@pytest.mark.parametrize("name,count", [("vit", 87_457_539), ("swin", 86_746_299),
                                        ("poolformer_m36", 55_405_827), ("poolformer_m48", 72_706_755)])
def test_full_timm_configurations_on_meta_device(name, count):
    with torch.device("meta"):
        net = MODELS.get(name)().build((3, 224, 224), 3)
    assert sum(p.numel() for p in net.parameters()) == count


@pytest.mark.slow
@pytest.mark.parametrize("name,shape", [("vit", (3, 224, 224)), ("swin", (3, 224, 224)),
                                        ("poolformer_m36", (3, 224, 224)), ("poolformer_m48", (3, 224, 224)),
                                        ("vit", (3, 28, 28)), ("htnet", (3, 28, 28))])
def test_full_configurations_forward_backward(name, shape):
    net = MODELS.get(name)().build(shape, 3)
    out = net(torch.rand(2, *shape) * 255)
    out.sum().backward()
    assert out.shape == (2, 3)
    assert all(p.grad is not None for p in net.parameters())


@pytest.mark.parametrize("name", ["vit-tiny", "swin-tiny", "poolformer-tiny"])
def test_tiny_timm_models_overfit_resized_flow_images(name):
    X, y = toy_images()  # 28x28, resized to the variant's 32x32 inside the model
    m = MODELS.get(name)(epochs=50, lr=1e-3, batch_size=12, drop_path_rate=0.0).fit(X, y, 3)
    assert _acc(m, X, y) == 1.0
    assert m.weights_source_ == "scratch"


def test_timm_grayscale_input_channel_order_and_bad_options():
    X, y = toy_images(shape=(1, 32, 32))
    m = MODELS.get("vit-tiny")(epochs=1).fit(X, y, 3)
    assert m.predict_proba(X).shape == (12, 3)
    X3 = torch.rand(2, 3, 32, 32) * 255
    bgr = MODELS.get("vit-tiny")(channels="bgr", normalize="none").build((3, 32, 32), 3).eval()
    with torch.no_grad():
        assert torch.equal(bgr(X3), bgr.net(X3.flip(1)))
    with pytest.raises(ValueError, match="channels"):
        MODELS.get("vit-tiny")(epochs=1, channels="brg").fit(X, y, 3)


def test_timm_local_checkpoint_is_loaded_and_recorded(tmp_path):
    X, y = toy_images(shape=(3, 32, 32))
    src = MODELS.get("vit-tiny")(epochs=1).fit(X, y, 3)
    sd = {k: v for k, v in src.net_.net.state_dict().items()}
    sd["head.weight"] = torch.zeros(1000, 32)  # an ImageNet-size head is dropped
    sd["head.bias"] = torch.zeros(1000)
    path = tmp_path / "vit_tiny.pth"
    torch.save({"state_dict": sd}, path)
    m = MODELS.get("vit-tiny")(epochs=0, weights=str(path)).fit(X, y[:12] % 2, 2)
    got = m.net_.net.state_dict()
    assert torch.equal(got["blocks.1.mlp.fc2.weight"], sd["blocks.1.mlp.fc2.weight"])
    assert got["head.weight"].shape == (2, 32)
    import hashlib

    assert m.weights_source_.endswith("sha256:" + hashlib.sha256(path.read_bytes()).hexdigest())
    swin = tmp_path / "swin.pth"
    torch.save(MODELS.get("swin-tiny")(epochs=0).fit(X, y, 3).net_.net.state_dict(), swin)
    with pytest.raises(ValueError, match="does not fit"):
        MODELS.get("vit-tiny")(epochs=0, weights=str(swin)).fit(X, y, 3)


# ---------------------------------------------------------------- SVM


def test_svm_separates_vectors_and_images():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 10)
    V = rng.normal(size=(30, 5)) + 3 * np.eye(3, 5)[y]
    for kernel in ("rbf", "linear", "linearsvc"):
        m = MODELS.get("svm")(kernel=kernel).fit(V, y, 3)
        p = m.predict_proba(V)
        assert np.allclose(p.sum(1), 1) and _acc(m, V, y) == 1.0
    X, yi = toy_images()
    assert _acc(MODELS.get("svm")(kernel="linear").fit(X, yi, 3), X, yi) == 1.0


def test_svm_bag_of_words_on_tokens():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 6)
    tokens = rng.integers(0, 8, (18, 16))
    tokens[:, :8] = (y * 2)[:, None]  # each class favours its own code
    m = MODELS.get("svm")(kernel="linear").fit(tokens, y, 3)
    assert m.bow_ and m.n_codes_ == 8 and _acc(m, tokens, y) == 1.0
    from models.classical import bag_of_words

    np.testing.assert_allclose(bag_of_words(np.array([[0, 0, 1, 9]]), 3), [[0.5, 0.25, 0.0]])


def test_svm_probability_and_degenerate_folds():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 2], 10)  # class 1 absent from training
    V = rng.normal(size=(20, 4)) + 3 * (y[:, None] == 2)
    for prob in (False, True):
        p = MODELS.get("svm")(probability=prob).fit(V, y, 3).predict_proba(V)
        assert p.shape == (20, 3) and (p[:, 1] == 0).all() and (p.argmax(1) == y).mean() >= 0.95
    one = MODELS.get("svm")().fit(V[:5], np.zeros(5, int), 3).predict_proba(V)
    assert (one.argmax(1) == 0).all()


# ---------------------------------------------------------------- runner


@pytest.mark.parametrize("model", ["offapexnet", "htnet-small", "svm"])
def test_models_plug_into_the_runner(model, tmp_path):
    from benchmark.config import resolve
    from benchmark.runner import execute, load_metrics
    from tests.test_runner import write_flow_root

    root = write_flow_root(tmp_path / "data", n_sub=2, n_per=3)
    cfg = resolve(dict(rep="precomputed", model=model, protocol="cde", data_root=str(root),
                       out=str(tmp_path / "runs"), epochs=None if model == "svm" else 2, n_boot=20))
    m = load_metrics(execute(cfg, progress=False))
    assert 0.0 <= m["metrics"]["overall"]["uf1"]["mean"] <= 1.0

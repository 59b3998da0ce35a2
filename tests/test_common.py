"""Checks every registered representation, model and protocol passes, parametrized over the
registries: a new entry is tested by this file without editing it (timm's test_models pattern).

Heavy entries (full-size networks, the learned tokenizers, mediapipe) are marked ``slow``.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.base import clone

from benchmark.datasets import read_dataset
from models import MODELS
from protocols import PROTOCOLS
from protocols.base import ProtocolError
from representations import REPRESENTATIONS
from representations.base import KINDS

SLOW_REPS = {"dfe", "dfe-bow"}  # mediapipe's face mesh on every frame
SLOW_MODELS = {"htnet", "vit", "swin", "poolformer_m36", "poolformer_m48", "efficientnet-lite0"}  # full-size networks
# Smallest settings that still run each entry's real code path.
TINY_REP_PARAMS = {"dface": {"preset": "tiny"}, "dface-pairs": {"preset": "tiny"}, "dfe": {"preset": "tiny", "steps": 5},
                   "dfe-bow": {"preset": "tiny", "steps": 5}}
TINY_MODEL_PARAMS = {"transformer": {"text_encoder": "hash"}, "dface-joint": {"text_encoder": "hash"}}
TOY_SHAPES = {"flow_image": (3, 28, 28), "image": (3, 28, 28), "frames": (2, 3, 28, 28), "tokens": (16, 32),
              "vector": (24,), "pairs": (2, 1, 32, 32)}  # pairs: what the tiny D-FACE tokenizer takes
CLASSES = ("negative", "positive", "surprise")


def _mark(names, slow):
    return [pytest.param(n, marks=pytest.mark.slow) if n in slow else n for n in names]


@pytest.fixture(scope="module")
def tiny_samples(synthetic_tiny):
    """Six CASME II clips of the tiny synthetic composite, two per class, with frames and flows."""
    sel = PROTOCOLS.get("cde")(dataset="casme2").select(read_dataset("megc2019", synthetic_tiny / "megc2019"))
    picked = [i for c in range(3) for i in np.flatnonzero(sel.y == c)[:2]]
    return [sel.samples[i] for i in picked], sel.y[picked]


# ------------------------------------------------------------------------ representations
@pytest.mark.parametrize("name", REPRESENTATIONS.names())
def test_representation_declares_a_known_kind_and_clones(name, rep_cache):
    cls = REPRESENTATIONS.get(name)
    assert cls.kind in KINDS
    rep = cls(**TINY_REP_PARAMS.get(name, {})).prepare()  # a recipe may name a checkpoint prepare() builds
    assert clone(rep).get_params() == rep.get_params()
    json.dumps(rep.recipe())  # the cache key and config.json need a JSON recipe


@pytest.mark.parametrize("name", _mark(REPRESENTATIONS.names(), SLOW_REPS))
def test_representation_fits_and_transforms_tiny_data(name, tiny_samples, rep_cache):
    samples, y = tiny_samples
    rep = REPRESENTATIONS.get(name)(**TINY_REP_PARAMS.get(name, {}))
    if rep.learned:
        rep = rep.fit(samples, y)
    X = rep.transform(samples)
    assert len(X) == len(samples)
    assert np.isfinite(np.asarray(X, dtype=np.float64)).all()
    if rep.kind in ("flow_image", "image"):
        assert X.ndim == 4 and X.shape[1] in (1, 3)


# ------------------------------------------------------------------------ models
@pytest.mark.parametrize("name", MODELS.names())
def test_model_accepts_known_kinds_and_clones(name):
    cls = MODELS.get(name)
    assert cls.accepts and set(cls.accepts) <= set(KINDS)
    model = cls(**TINY_MODEL_PARAMS.get(name, {}))
    assert clone(model).get_params() == model.get_params()


@pytest.mark.parametrize("name", _mark(MODELS.names(), SLOW_MODELS))
def test_model_fits_and_predicts_each_kind_it_accepts(name, rep_cache):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 1 if name in SLOW_MODELS else 3)
    kinds = sorted(MODELS.get(name).accepts)
    # full-size networks on one kind only: test_models_zoo runs each configuration's forward/backward
    for kind in kinds[:1] if name in SLOW_MODELS else kinds:
        X = rng.uniform(0, 255, (len(y), *TOY_SHAPES[kind])).astype(np.float32)
        model = MODELS.get(name)(**TINY_MODEL_PARAMS.get(name, {}))
        if "epochs" in model.get_params():
            model.set_params(epochs=1)
        if "device" in model.get_params():
            model.set_params(device="cpu")
        if hasattr(model, "bind_representation"):  # a model owning a copy of a representation's network
            model.bind_representation(REPRESENTATIONS.get("dface-pairs")(preset="tiny"))
        proba = model.fit(X, y, n_classes=3, class_names=CLASSES).predict_proba(X)
        assert proba.shape == (len(y), 3), kind
        np.testing.assert_allclose(proba.sum(1), 1, atol=1e-4, err_msg=kind)


# ------------------------------------------------------------------------ protocols
@pytest.mark.parametrize("name", PROTOCOLS.names())
def test_protocol_splits_into_disjoint_folds_or_says_why(name, synthetic_tiny):
    """On the tiny data LOSO protocols split; those that need more samples per class or subject
    must say so in one ProtocolError, never return an empty fold or fail inside scikit-learn."""
    protocol = PROTOCOLS.get(name)(dataset="casme2")
    sel = protocol.select(read_dataset(protocol.source, synthetic_tiny / protocol.source))
    try:
        folds = protocol.split(sel, seed=0)
    except ProtocolError as err:
        assert protocol.bootstrap_unit == "sample" and name in str(err)
        return
    assert folds and len(sel.classes) >= 2
    for fold in folds:
        assert len(fold.test) and len(fold.train)
        assert not set(fold.train) & set(fold.test)
        if protocol.bootstrap_unit == "subject":  # leave-one-subject-out: no subject on both sides
            assert not set(sel.groups[fold.train]) & set(sel.groups[fold.test])
    assert protocol.describe()["protocol"] == name

"""The D-FACE probe diagnosis' measures (benchmark/analyze/dface_probe.py)."""
import numpy as np

from benchmark.analyze.dface_probe import STAGES, markdown, shared_share, stage_features


def test_shared_share_is_one_for_a_repeated_code_and_zero_for_a_centred_map():
    rng = np.random.default_rng(0)
    m = rng.normal(size=8)
    repeated = np.tile(m, (16, 1))[None]  # one vector over all 16 positions
    centred = rng.normal(size=(1, 16, 8))
    centred -= centred.mean(axis=1, keepdims=True)
    mixed = repeated + centred  # |D|^2 = 16 |m|^2 + |R|^2 exactly
    assert np.allclose(shared_share(repeated), 1.0)
    assert np.allclose(shared_share(centred), 0.0, atol=1e-12)
    want = 16 * (m ** 2).sum() / (16 * (m ** 2).sum() + (centred ** 2).sum())
    assert np.allclose(shared_share(mixed), want)
    assert np.isnan(shared_share(np.zeros((1, 16, 8))))[0]  # a blank sample has no share


def test_stage_features_one_hot_codes_the_indices():
    idx = np.array([[0, 2], [1, 1]])
    q = np.arange(2 * 2 * 3, dtype=float).reshape(2, 2, 3)
    codebook = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0]])
    f = stage_features(idx, q, -q, codebook)
    assert f["one-hot"].tolist() == [[1, 0, 0, 0, 0, 1], [0, 1, 0, 0, 1, 0]]
    assert f["quantized"].shape == (2, 6) and np.array_equal(f["continuous"], -q.reshape(2, 6))
    # a repeated vector is all shared: its centred motion is zero at every position -> code 0
    d = np.tile(np.array([[[5.0, 5, 5]]]), (1, 2, 1))
    assert np.array_equal(stage_features(np.zeros((1, 2), int), d, d, codebook)["quantized, shared removed"],
                          np.zeros((1, 6)))
    centred = np.array([[[1.0, 0, 0], [-1, 0, 0]]])  # mean zero: nearest codes 1 and 0 (distance 1 vs 4 / 1 vs 2)
    assert stage_features(np.zeros((1, 2), int), centred, centred, codebook)["quantized, shared removed"].tolist() \
        == [[1, 0, 0, 0, 0, 0]]


def test_markdown_lists_every_stage():
    row = {"protocol": "cde:casme2", "tokenizer": "synthetic",
           "probe": {s: {"uf1": 0.5, "uar": 0.4} for s in STAGES},
           "shared_share": {"median": 0.1, "p10_p90": [0.0, 0.3]}}
    text = markdown([row])
    assert text.count("0.500 (0.400)") == 4 and "0.10 [0.00, 0.30]" in text

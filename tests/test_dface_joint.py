"""dface-pairs + dface-joint: the tokenizer fine-tuned with the classifier (CE + lambda_rec * MSE)."""
import json

import numpy as np
import pytest
import torch

CDE_CLASSES = ("negative", "positive", "surprise")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One cache for the module: the tiny default checkpoint is built once, on first use."""
    path = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MER_BENCHMARK_CACHE", str(path))
        mp.setenv("MER_BENCHMARK_JOBS", "1")
        yield path


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    from benchmark.datasets.synthetic import generate

    return generate(tmp_path_factory.mktemp("syn") / "data", scale="tiny")


@pytest.fixture(scope="module")
def casme2(cache, tiny_root):
    """The tiny CDE CASME II part: samples, labels, subjects, and its pairs from the default tokenizer."""
    from benchmark.datasets import read_dataset
    from protocols import PROTOCOLS
    from representations.dface import DFacePairs

    sel = PROTOCOLS.get("cde")(dataset="casme2").select(read_dataset("megc2019", tiny_root / "megc2019"))
    rep = DFacePairs(preset="tiny")
    return sel.samples, sel.y, np.asarray(sel.groups), rep, rep.transform(sel.samples)


def _model(**kw):
    from models.dface_joint import DFaceJoint

    return DFaceJoint(**{"text_encoder": "hash", "epochs": 1, **kw})


def _fit(rep, X, y, subjects=None, **kw):
    return _model(**kw).bind_representation(rep).fit(X, y, n_classes=3, class_names=CDE_CLASSES, subjects=subjects)


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _changed(before, after, prefix=""):
    return {k for k in before if k.startswith(prefix) and not torch.equal(before[k], after[k])}


# --------------------------------------------------------------------------- the pairs


def test_pairs_are_what_the_frozen_tokenizer_sees_and_are_cached(casme2):
    from representations.dface import DFace

    samples, _, _, rep, X = casme2
    assert X.shape == (len(samples), 2, 1, 32, 32) and X.dtype == np.float32
    net, meta = rep.tokenizer()
    assert len(meta["sha256"]) == 64 and meta["trained_on"]["subjects"]
    d = net.tokenize(torch.as_tensor(X[:, 0]), torch.as_tensor(X[:, 1]))[1].numpy()
    np.testing.assert_allclose(d, DFace(preset="tiny", discretize=False).transform(samples), atol=1e-5)
    again = type(rep)(preset="tiny")
    np.testing.assert_array_equal(again.transform(samples), X)
    assert again.cache_stats_["computed"] == 0 and again.cache_stats_["hits"] == len(samples)
    assert not rep.learned and type(rep)(pretrain="crossfit").learned


def test_a_sample_without_frames_gets_identical_frames_and_no_action(casme2):
    import dataclasses

    from representations.base import RepresentationError
    from representations.dface import DFacePairs

    samples = list(casme2[0][:3])
    bare = [samples[0], dataclasses.replace(samples[1], frames={}), samples[2]]
    with pytest.raises(RepresentationError, match="on_missing=blank"):
        DFacePairs(preset="tiny").transform(bare)
    rep = DFacePairs(preset="tiny", on_missing="blank")
    X = rep.transform(bare)
    assert not X[1].any() and X[0].any()
    d = rep.tokenizer()[0].tokenize(torch.as_tensor(X[1:2, 0]), torch.as_tensor(X[1:2, 1]))[1]
    assert not d.any()  # D = 0: the "no action" tokens dface gives such a sample
    assert [e["sample"] for e in rep.report_ if e["kind"] == "no_frames_no_action_tokens"] == [samples[1].key]


def test_a_crossfit_fold_needs_a_crossfitted_checkpoint(casme2):
    from representations.dface import DFacePairs

    with pytest.raises(ValueError, match="dface-pairs pretrain=crossfit.*is not one"):
        DFacePairs(preset="tiny", pretrain="crossfit").fit(casme2[0])


# --------------------------------------------------------------------------- joint training


def test_a_training_step_changes_the_tokenizer_and_frozen_mode_does_not(casme2):
    _, y, _, rep, X = casme2
    before = _state(rep.tokenizer()[0])
    tuned = _fit(rep, X, y)
    after = _state(tuned.net_.tokenizer)
    assert _changed(before, after, "spatial") and _changed(before, after, "quant.codebook")
    assert _changed(before, after, "decoder")  # lambda_rec = 0.1 trains the decoder too
    assert tuned.tokenizer_["fine_tuned"] and tuned.tokenizer_["sha256"] == rep.tokenizer()[1]["sha256"]
    assert not _changed(before, _state(rep.tokenizer()[0]))  # the representation's checkpoint is untouched
    frozen = _fit(rep, X, y, tokenizer_lr=0.0)
    assert not _changed(before, _state(frozen.net_.tokenizer))
    assert not frozen.tokenizer_["fine_tuned"] and all(v == 0 for v in (e["rec"] for e in frozen.losses_))
    proba = tuned.predict_proba(X)
    assert proba.shape == (len(y), 3) and np.allclose(proba.sum(1), 1, atol=1e-5)


def test_the_reconstruction_term_is_in_the_loss_and_lambda_rec_matters(casme2):
    _, y, _, rep, X = casme2
    before = _state(rep.tokenizer()[0])
    with_rec = _fit(rep, X, y, epochs=3)
    for e in with_rec.losses_:
        assert e["rec"] > 0 and e["loss"] == pytest.approx(e["objective"] + 0.1 * e["rec"], rel=1e-5)
    no_rec = _fit(rep, X, y, epochs=3, lambda_rec=0.0)
    assert all(e["rec"] == 0 and e["loss"] == e["objective"] for e in no_rec.losses_)
    after = _state(no_rec.net_.tokenizer)
    # without the term only the classifier's gradient reaches the tokenizer: encoder, not decoder
    assert _changed(before, after, "spatial") and not _changed(before, after, "decoder")
    assert _changed(_state(with_rec.net_.tokenizer), after)
    assert not np.array_equal(with_rec.predict_proba(X), no_rec.predict_proba(X))
    heavy = _fit(rep, X, y, epochs=3, lambda_rec=10.0)
    assert heavy.losses_[0]["loss"] == pytest.approx(heavy.losses_[0]["objective"] + 10 * heavy.losses_[0]["rec"],
                                                     rel=1e-5)
    with pytest.raises(ValueError, match="lambda_rec"):
        _fit(rep, X, y, lambda_rec=-1)


def test_the_same_seed_gives_the_same_model(casme2):
    _, y, _, rep, X = casme2
    a, b = _fit(rep, X, y, epochs=2, seed=3), _fit(rep, X, y, epochs=2, seed=3)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert not _changed(_state(a.net_), _state(b.net_))
    c = _fit(rep, X, y, epochs=2, seed=4)
    assert not np.array_equal(a.predict_proba(X), c.predict_proba(X))


def test_inner_validation_keeps_the_best_epochs_tokenizer_too(casme2):
    from models.base import EpochChoiceSet

    _, y, _, rep, X = casme2
    m = _model(epochs=3).bind_representation(rep)
    m.fit(X, y, n_classes=3, class_names=CDE_CLASSES, selection=EpochChoiceSet(X, y, "uf1"))
    assert len(m.history_) == 3 and 1 <= m.best_epoch_ <= 3
    assert m.attention(X).shape == (len(y), 16)


def test_it_needs_a_bound_tokenizer_and_pairs(casme2):
    from representations.dface import DFace

    _, y, _, rep, X = casme2
    with pytest.raises(RuntimeError, match="bind_representation"):
        _model().fit(X, y, n_classes=3, class_names=CDE_CLASSES)
    with pytest.raises(ValueError, match="dface-pairs"):
        _model().bind_representation(DFace(preset="tiny"))
    with pytest.raises(ValueError, match="pairs"):
        _model().bind_representation(rep).fit(X[:, 0], y, n_classes=3, class_names=CDE_CLASSES)


# --------------------------------------------------------------------------- contamination record


def test_the_model_records_its_checkpoint_and_training_subjects(casme2):
    _, y, groups, rep, X = casme2
    train = groups != groups[0]
    m = _fit(rep, X[train], y[train], subjects=groups[train])
    pretrained = set(rep.tokenizer()[1]["trained_on"]["subjects"])
    assert m.training_subjects() == pretrained | set(groups[train])
    assert groups[0] not in m.training_subjects() and m.fine_tuned_on_ == sorted(set(groups[train]))
    assert m.weights_source_.endswith("sha256:" + rep.tokenizer()[1]["sha256"])
    with pytest.raises(RuntimeError, match="contamination"):
        _fit(rep, X, y).training_subjects()  # fitted without its subjects: nothing to prove


def _plan(tiny_root, tmp_path, **extra):
    from benchmark.config import resolve
    from benchmark.runner import plan

    cfg = resolve(dict(rep="dface-pairs", model="dface-joint", protocol="cde", dataset="casme2",
                       data_root=str(tiny_root), out=str(tmp_path / "runs"), epochs=1, n_boot=10, workers=1,
                       rep_params={"preset": "tiny"}, model_params={"text_encoder": "hash"}, **extra))
    return plan(cfg)


def test_the_runner_passes_the_fold_subjects_and_checks_the_models_record(casme2, tiny_root, tmp_path, monkeypatch):
    from benchmark.folds import ContaminationError, fold_model, run_fold
    from models.dface_joint import DFaceJoint

    p = _plan(tiny_root, tmp_path)
    X = p.rep.transform(p.sel.samples)
    fold = p.folds[0]
    test_subject = str(p.sel.groups[fold.test][0])
    model = fold_model(p, fold, X, fold.train, None, 0, p.rep)
    assert model.fine_tuned_on_ == sorted({str(s) for s in p.sel.groups[fold.train]})
    assert test_subject not in model.training_subjects()
    assert run_fold(p, fold, 0, 0, X).contaminated_subjects == ()

    fit = DFaceJoint.fit

    def leaky_fit(self, X, y, n_classes, selection=None, class_names=None, subjects=None):
        return fit(self, X, y, n_classes, selection, class_names, [*subjects, test_subject])

    monkeypatch.setattr(DFaceJoint, "fit", leaky_fit)  # as if the test subject were among the fine-tuning ones
    with pytest.raises(ContaminationError, match=f"model 'dface-joint' was trained on test subject.*{test_subject}"):
        run_fold(p, fold, 0, 0, X)
    allowed = _plan(tiny_root, tmp_path, allow_contamination=True)
    assert run_fold(allowed, fold, 0, 0, X).contaminated_subjects == (test_subject,)


# --------------------------------------------------------------------------- command line


def test_cli_runs_joint_training_on_the_synthetic_data(cache, tiny_root, tmp_path, capsys):
    from benchmark.cli import main

    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    assert "dface-joint (pairs)" in listing and "dface-pairs (pairs)" in listing
    assert any(line.split() == ["dface-pairs", "->", "dface-joint"] for line in listing.splitlines())
    base = ["run", "--rep", "dface-pairs", "--model", "dface-joint", "--protocol", "cde", "--epochs", "2",
            "--data-root", str(tiny_root), "--rep-param", "preset=tiny", "--model-param", "text_encoder=hash",
            "--n-boot", "20", "--workers", "1", "--quiet", "--json"]
    assert main([*base, "--out", str(tmp_path / "runs")]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["rep"] == "dface-pairs" and m["model"] == "dface-joint" and not m["contaminated"]
    assert 0 <= m["metrics"]["overall"]["uf1"]["mean"] <= 1
    run = next((tmp_path / "runs").iterdir())
    cfg = json.loads((run / "config.json").read_text())
    sha = cfg["rep_recipe"]["checkpoint_sha256"]
    assert m["weights"] == [f"{cfg['checkpoints']['checkpoint']['path'].rsplit('/', 1)[-1]} sha256:{sha}"]
    assert cfg["model_params"]["lambda_rec"] == 0.1 and cfg["model_params"]["tokenizer_lr"] == 2e-4
    # cross-fitted: each fold's model starts from the checkpoint that never saw its test subject
    assert main([*base, "--out", str(tmp_path / "crossfit"), "--dataset", "casme2", "--rep-param", "pretrain=crossfit",
                 "--rep-param", "crossfit_k=2", "--rep-param", "crossfit_steps=2"]) == 0
    m = json.loads(capsys.readouterr().out)
    cfg = json.loads((next((tmp_path / "crossfit").iterdir()) / "config.json").read_text())
    shas = {c["sha256"] for c in cfg["crossfit"]["checkpoints"]}
    assert len(shas) == 2 and {w.rsplit("sha256:", 1)[1] for w in m["weights"]} == shas and not m["contaminated"]

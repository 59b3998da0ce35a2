"""Cross-fitted pretraining (D-FACE ``pretrain=crossfit``): K checkpoints on the run's own clips,
each fold handed the one that never saw its test subject (benchmark/crossfit.py)."""
import dataclasses
import json
import os

import numpy as np
import pytest

from benchmark.config import resolve
from benchmark.plan import crossfit_assignment, plan, run_header
from benchmark.runner import ContaminationError, execute, run_fold
from representations._dface_net import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CROSSFIT = {"preset": "tiny", "pretrain": "crossfit", "crossfit_k": 3, "crossfit_steps": 2}


def _cfg(root, out, rep_params=CROSSFIT, **kw):
    return resolve(dict(rep="dface", model="logreg", protocol="cde", dataset="casme2", data_root=str(root),
                        out=str(out), n_boot=10, rep_params=dict(rep_params), **kw))


def _built(header) -> list[bool]:
    return [c["built_now"] for c in header["crossfit"]["checkpoints"]]


def test_checkpoints_are_built_once_and_no_fold_sees_its_test_subject(synthetic_tiny, rep_cache, tmp_path):
    run = execute(_cfg(synthetic_tiny, tmp_path / "a"), progress=False)
    header = json.loads((run / "config.json").read_text())
    cf = header["crossfit"]
    assert cf["k"] == 3 and _built(header) == [True] * 3 and cf["build_seconds"] > 0
    assert all(c["steps"] == 2 and c["pairs"] > 0 and sum(c["pair_kinds"].values()) == c["pairs"]
               for c in cf["checkpoints"])
    assert json.loads((run / "metrics.json").read_text())["contaminated"] == []
    ckpts = sorted((rep_cache.parent / "dface").glob("dface-tiny-crossfit-*.pt"))
    assert len(ckpts) == 3
    for fold, group in cf["fold_groups"].items():
        assert cf["groups"][fold] == group  # LOSO: the fold is named after its test subject
        _, meta = load_checkpoint(ckpts[group])
        subjects = meta["trained_on"]["subjects"]
        assert fold not in subjects and meta["recipe"]["frames"] == "crossfit"
        # trained on every other group's subjects (and the synthetic init's)
        assert {s for s, g in cf["groups"].items() if g != group} <= set(subjects)
    # another seed, another run folder: the same groups, the same checkpoints, nothing built
    mtimes = [p.stat().st_mtime_ns for p in ckpts]
    again = json.loads((execute(_cfg(synthetic_tiny, tmp_path / "b", seeds=(7,)), progress=False)
                        / "config.json").read_text())
    assert _built(again) == [False] * 3 and again["crossfit"]["groups"] == cf["groups"]
    assert [c["sha256"] for c in again["crossfit"]["checkpoints"]] == [c["sha256"] for c in cf["checkpoints"]]
    assert [p.stat().st_mtime_ns for p in ckpts] == mtimes


def test_a_checkpoint_that_saw_the_test_subject_is_refused(synthetic_tiny, rep_cache, tmp_path):
    p = plan(_cfg(synthetic_tiny, tmp_path))
    groups = p.crossfit["fold_groups"]
    path_of = {groups[name]: params["checkpoint"] for name, params in p.fold_rep_params.items()}
    wrong = {name: {"checkpoint": path_of[(g + 1) % 3]} for name, g in groups.items()}  # another group's
    bad = dataclasses.replace(p, fold_rep_params=wrong)
    with pytest.raises(ContaminationError, match=p.folds[0].name):
        run_fold(bad, p.folds[0], 0, 0, None)
    # the right one passes, and its record names no contaminated subject
    assert run_fold(p, p.folds[0], 0, 0, None).contaminated_subjects == ()


def test_the_groups_follow_the_split_seed_not_the_run_seed(synthetic_tiny, rep_cache, tmp_path):
    p = plan(_cfg(synthetic_tiny, tmp_path, seeds=(0, 1, 2)))
    args = (p.rep, p.report, p.sel, p.folds)
    assert crossfit_assignment(*args, 0) == p.crossfit["groups"]
    assert p.crossfit["split_seed"] == 0 and sorted(np.bincount(list(p.crossfit["groups"].values()))) == [2, 2, 2]
    others = [crossfit_assignment(*args, s) for s in (1, 2, 3)]
    assert any(o != p.crossfit["groups"] for o in others)


def test_pretrain_none_keeps_todays_recipe_and_plan(synthetic_tiny, rep_cache, tmp_path):
    from representations.dface import DFace

    rep = DFace(preset="tiny").prepare()
    assert not rep.learned and rep.crossfit_groups() == 0
    assert set(rep.recipe()) == {"rep", "batch_size", "checkpoint", "device", "discretize", "finetune_lr",
                                 "finetune_steps", "match_gain", "on_missing", "preset", "seed",
                                 "checkpoint_sha256", "checkpoint_trained_on"}  # the encodings' cache key
    assert DFace(preset="tiny", pretrain="none").recipe() == rep.recipe()
    p = plan(_cfg(synthetic_tiny, tmp_path, rep_params={"preset": "tiny"}))
    assert p.crossfit is None and p.fold_rep_params == {} and "crossfit" not in run_header(p)
    assert not list((rep_cache.parent / "dface").glob("*crossfit*"))


@pytest.mark.parametrize("params, match", [({"crossfit_k": 7}, "only 6 subjects"),
                                           ({"crossfit_k": 1}, "crossfit_k must be an integer >= 2"),
                                           ({"pretrain": "yes"}, "pretrain must be"),
                                           ({"crossfit_steps": 0}, "crossfit_steps must be"),
                                           ({"pretrain": "none", "crossfit_gain": True}, "needs pretrain=crossfit")])
def test_bad_settings_are_clear_errors_before_any_work(synthetic_tiny, rep_cache, tmp_path, params, match):
    with pytest.raises(ValueError, match=match):
        plan(_cfg(synthetic_tiny, tmp_path, rep_params={**CROSSFIT, **params}))
    assert not (rep_cache.parent / "dface").exists()  # not even the default checkpoint was built


def test_folds_mixing_subject_groups_are_refused(synthetic_tiny, rep_cache, tmp_path):
    cfg = resolve(dict(rep="dface", model="logreg", protocol="ldo", data_root=str(synthetic_tiny),
                       out=str(tmp_path), rep_params=CROSSFIT))  # a fold's test set: a whole database
    with pytest.raises(ValueError, match="subject-wise folds"):
        plan(cfg)


def test_mixed_pairs_draw_every_kind_inside_clips(synthetic_tiny):
    from benchmark.datasets import read_dataset
    from representations._dface_pairs import PAIR_MIX, mixed_pairs

    samples = read_dataset("casme2", synthetic_tiny / "casme2").samples
    pairs, kinds = mixed_pairs(samples, 40, 16, 1, seed=0)
    assert pairs.shape == (40, 2, 1, 16, 16) and sum(kinds.values()) == 40
    assert set(kinds) == {k for k, _ in PAIR_MIX} and all(kinds.values())
    same = (pairs[:, 0] == pairs[:, 1]).all(axis=(1, 2, 3)).sum()
    assert same >= kinds["still"]


def test_gain_matched_pairs_match_the_first_frame_and_keep_still_pairs(synthetic_tiny):
    from representations._dface_pairs import gain_matched_u8

    rng = np.random.default_rng(0)
    a = rng.integers(40, 200, size=(3, 1, 1, 16, 16)).astype(np.uint8)
    b = np.clip(a.astype(int) * 0.7 + 30, 0, 255).astype(np.uint8)  # a global gain and offset change
    pairs = np.concatenate([a, b], axis=1)
    pairs[2, 1] = pairs[2, 0]  # a still pair
    out = gain_matched_u8(pairs)
    assert out.dtype == np.uint8 and np.array_equal(out[:, 0], pairs[:, 0])
    assert np.allclose(out[:, 1].mean(axis=(1, 2, 3)), pairs[:, 0].mean(axis=(1, 2, 3)), atol=0.6)
    assert np.abs(out[:2, 1].astype(int) - pairs[:2, 0]).max() <= 2  # the gain change is undone
    assert np.array_equal(out[2], pairs[2])


def test_crossfit_gain_trains_other_checkpoints_on_gain_matched_pairs(synthetic_tiny, rep_cache, tmp_path):
    plain = plan(_cfg(synthetic_tiny, tmp_path / "a"))
    gain = plan(_cfg(synthetic_tiny, tmp_path / "b", rep_params={**CROSSFIT, "crossfit_gain": True}))
    paths = [{v["checkpoint"] for v in p.fold_rep_params.values()} for p in (plain, gain)]
    assert not paths[0] & paths[1]  # its own cache key: never the raw-pair checkpoints
    for path in paths[1]:
        assert load_checkpoint(path)[1]["recipe"]["match_gain"] is True
    assert all("match_gain" not in load_checkpoint(path)[1]["recipe"] for path in paths[0])
    assert gain.rep.recipe()["crossfit_gain"] is True and "crossfit_gain" not in plain.rep.recipe()


def test_the_identity_probe_encodes_each_sample_with_its_own_groups_checkpoint(synthetic_tiny, rep_cache, tmp_path,
                                                                               monkeypatch):
    """Folds over samples hold every subject: no per-fold checkpoint exists that never saw a test
    subject, so each sample is encoded by the checkpoint trained without its own subject's group."""
    from benchmark.crossfit import OwnGroupEncoding
    from benchmark.runner import load_metrics
    from protocols.identity import Identity
    from representations.dface import DFace

    monkeypatch.setattr(Identity, "n_folds", 2)  # the tiny set has two clips per subject

    cfg = resolve(dict(rep="dface", model="logreg", protocol="identity", dataset="casme2",
                       data_root=str(synthetic_tiny), out=str(tmp_path / "runs"), n_boot=10, rep_params=CROSSFIT))
    p = plan(cfg)
    assert isinstance(p.rep, OwnGroupEncoding) and not p.rep.learned and p.fold_rep_params == {}
    assert p.crossfit["encoding"].startswith("own-group") and p.crossfit["fold_groups"] == {}
    X = p.rep.transform(p.sel.samples)
    paths = [os.path.expandvars(c["path"]) for c in p.crossfit["checkpoints"]]
    for k, s in enumerate(p.sel.samples[:6]):
        path = p.rep.checkpoints[s.subject]
        assert path == paths[p.crossfit["groups"][s.subject]]
        assert s.subject not in load_checkpoint(path)[1]["trained_on"]["subjects"]
        own = DFace(**{**CROSSFIT, "checkpoint": path}).fit([s]).transform([s])
        assert np.array_equal(X[k], own[0])
    run = execute(cfg, progress=False)
    header = json.loads((run / "config.json").read_text())
    assert header["crossfit"]["encoding"] == OwnGroupEncoding.encoding
    assert header["rep_recipe"]["encoding"] == OwnGroupEncoding.encoding
    assert load_metrics(run)["contaminated"] == []

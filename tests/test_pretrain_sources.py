"""D-FACE tokenizer pretraining sources and sessions (issue 13): face videos read with OpenCV
(VoxCeleb's ``id/video/clip.mp4`` layout, mixed with frame folders), other databases than the
test one as a cross-fitted run's start, resumable training, and bad input as one clear line.
Every video here is written by the test itself with ``cv2.VideoWriter``."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from benchmark.cli import main
from benchmark.datasets import videos
from representations._dface_net import load_checkpoint
from representations._dface_pairs import corpus_pairs

pytestmark = pytest.mark.usefixtures("one_torch_thread")

def level(i: int) -> int:
    """Frame i's uniform grey level (i < 60): a pair's gap is its brightness difference / 3."""
    return 40 + 3 * i


def write_video(path, n=40, fps=25.0, size=(48, 40)):
    """A clip whose frame i is grey ``level(i)``, in the first container this OpenCV build writes."""
    for suffix, codec in ((path.suffix, "mp4v" if path.suffix == ".mp4" else "MJPG"), (".avi", "MJPG")):
        out = path.with_suffix(suffix)
        out.parent.mkdir(parents=True, exist_ok=True)
        w = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*codec), fps, size)
        if w.isOpened():
            for i in range(n):
                w.write(np.full((size[1], size[0], 3), level(i), np.uint8))
            w.release()
            if out.stat().st_size > 0 and cv2.VideoCapture(str(out)).isOpened():
                return out
        w.release()
    pytest.skip(f"this OpenCV build ({cv2.__version__}) writes neither mp4v .mp4 nor MJPG .avi")


def write_frames(folder, n=6, value=100):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cv2.imwrite(str(folder / f"img{i}.jpg"), np.full((40, 40, 3), value + i, np.uint8))


def decoded_grey(path) -> list[float]:
    """Every frame's mean grey level, decoded in order (the codec shifts levels a little)."""
    cap, out = cv2.VideoCapture(str(path)), []
    while (got := cap.read())[0]:
        out.append(float(cv2.cvtColor(got[1], cv2.COLOR_BGR2GRAY).mean()))
    return out


def _frame_number(img) -> float:
    return (float(img.mean()) - 38.5) / 3  # level() after the codecs' shift (measured: 38-39 at frame 0)


def test_a_video_is_probed_and_read_at_the_frames_asked_for(tmp_path, monkeypatch):
    for name in ("clip.mp4", "clip.avi"):
        path = write_video(tmp_path / name, n=40, fps=25.0)
        info = videos.probe(path)
        assert info.fps == pytest.approx(25.0) and info.frames == 40 and info.size == (48, 40)
        monkeypatch.setattr(videos, "SEEK_AFTER", 5)  # 2 -> 30 seeks, 30 -> 33 decodes through
        frames, end = videos.read_frames(path, [30, 2, 33], prepare=lambda img: cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
        assert end is None and sorted(frames) == [2, 30, 33]
        ref = decoded_grey(path)
        for i, img in frames.items():  # the frame decoding in order gives, also after a seek
            assert img.ndim == 2 and int(np.abs(np.array(ref) - img.mean()).argmin()) == i
        # a container frame count can overstate the clip: indices past its end get its last frame
        frames, end = videos.read_frames(path, [39, 45])
        assert end == 40 and np.array_equal(frames[45], frames[39])


def test_voxceleb_layout_mixed_with_frame_folders_gives_pairs_at_each_clips_rate(tmp_path):
    root = tmp_path / "vox"
    write_video(root / "id00012" / "abcDEF" / "00001.mp4", n=40, fps=25.0)
    write_video(root / "id00034" / "ghiJKL" / "00002.avi", n=60, fps=50.0)
    write_frames(root / "stills" / "seq1", value=250)
    pairs, subjects, record = corpus_pairs(root, 60, 16, 1, fps=30.0, seed=0)
    assert pairs.shape == (60, 2, 1, 16, 16)
    assert subjects == ["vox:id00012", "vox:id00034", "vox:stills"]  # the speaker id, as a subject
    assert record == {"sequences": 1, "videos_used": 2}
    gaps = [_frame_number(b) - _frame_number(a) for a, b in pairs[:, :, 0].astype(float)
            if a.mean() < 245]  # the two videos (the stills are grey 250+)
    # 0.25-0.5 s apart: 6-12 frames at 25 fps, 12-25 at 50 fps, always forward inside one clip
    assert gaps and all(5.5 < g < 25.5 for g in gaps) and any(g > 12.5 for g in gaps) and any(g < 12.5 for g in gaps)


def test_pretrain_records_video_subjects_and_a_frame_rate_fallback(tmp_path, rep_cache, monkeypatch):
    from representations.dface import pretrain

    root = tmp_path / "vox"
    write_video(root / "id00012" / "abcDEF" / "00001.mp4")
    monkeypatch.setattr(videos, "MAX_FPS", 20.0)  # the 25 fps header now reads as "no usable rate"
    meta = pretrain(str(root), tmp_path / "v.pt", preset="tiny", steps=2, pairs=6, fps=30.0, log=lambda m: None)
    assert meta["trained_on"]["subjects"] == ["vox:id00012"]
    assert meta["sources"][0]["fps_fallback"] == {"fps": 30.0, "videos": 1, "first": ["id00012/abcDEF/00001.mp4"]}
    _, stored = load_checkpoint(tmp_path / "v.pt")
    assert stored["sources"] == meta["sources"]


def test_an_undecodable_video_is_skipped_and_named_or_one_line_when_nothing_is_left(tmp_path, capsys):
    root = tmp_path / "corpus"
    write_video(root / "id1" / "v" / "good.mp4")
    (root / "id2" / "v").mkdir(parents=True)
    (root / "id2" / "v" / "broken.mp4").write_text("not a video")
    pairs, subjects, record = corpus_pairs(root, 8, 16, 1, fps=30.0, seed=0)
    assert len(pairs) == 8 and subjects == ["corpus:id1"]
    assert record["skipped_videos"]["count"] == 1
    assert record["skipped_videos"]["first"][0]["path"] == "id2/v/broken.mp4"
    assert "cannot open video" in record["skipped_videos"]["first"][0]["reason"]
    with pytest.raises(videos.VideoError, match="broken.mp4"):
        videos.probe(root / "id2" / "v" / "broken.mp4")

    only_bad = tmp_path / "bad"
    (only_bad / "id2").mkdir(parents=True)
    (only_bad / "id2" / "broken.avi").write_bytes(b"\0" * 100)
    rc = main(["pretrain", "dface", "--frames", str(only_bad), "--preset", "tiny", "--steps", "1", "--pairs", "2",
               "--out", str(tmp_path / "x.pt"), "--log-every", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith("error: no readable frames under") and "broken.avi" in err[-1]
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.parametrize("make", ["empty", "one_image", "not_there"])
def test_a_folder_without_readable_frames_is_one_line(tmp_path, capsys, make):
    folder = tmp_path / "frames"
    if make != "not_there":
        folder.mkdir()
    if make == "one_image":
        cv2.imwrite(str(folder / "img1.jpg"), np.zeros((8, 8, 3), np.uint8))
    rc = main(["pretrain", "dface", "--frames", str(folder), "--preset", "tiny", "--steps", "1", "--pairs", "2",
               "--out", str(tmp_path / "x.pt"), "--log-every", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert err[0].startswith("error: --frames" if make == "not_there" else "error: no readable frames under")


def test_an_interrupted_pretraining_resumes_to_the_uninterrupted_checkpoint(tmp_path):
    from representations.dface import pretrain

    kw = dict(preset="tiny", steps=12, batch_size=4, pairs=8, scale="tiny", log_every=1, save_every=4)
    full = pretrain("synthetic", tmp_path / "a" / "ckpt.pt", log=lambda m: None, **kw)
    assert not (tmp_path / "a" / ".ckpt.pt.resume").exists()  # the state goes once the checkpoint is written

    out, said = tmp_path / "b" / "ckpt.pt", []

    def stop_at_step_10(msg):
        said.append(msg)
        if msg.startswith("step 10/"):
            raise KeyboardInterrupt  # the session ends after the step-8 state was saved

    with pytest.raises(KeyboardInterrupt):
        pretrain("synthetic", out, log=stop_at_step_10, **kw)
    assert (out.parent / ".ckpt.pt.resume").exists() and not out.exists()
    said.clear()
    resumed = pretrain("synthetic", out, log=said.append, **kw)
    assert any("resuming at step 8/12" in m for m in said) and not any(m.startswith("step 8/") for m in said)
    # same weights, optimizer path and history: the file itself is identical
    assert resumed["sha256"] == full["sha256"] and out.read_bytes() == (tmp_path / "a" / "ckpt.pt").read_bytes()
    cost = json.loads(out.with_suffix(".json").read_text())
    assert cost["steps"] == 12 and cost["pairs"] == 8 and cost["seconds"] > 0 and cost["sha256"] == full["sha256"]
    assert cost["sessions"] == [{"from_step": 0, "to_step": 8}, {"from_step": 8, "to_step": 12}]
    assert not (out.parent / ".ckpt.pt.resume").exists()


def test_an_interrupted_pretrain_command_says_how_to_resume(tmp_path, capsys, monkeypatch):
    import representations.dface as dface

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(dface, "pretrain", interrupted)
    rc = main(["pretrain", "dface", "--frames", "synthetic", "--preset", "tiny", "--steps", "3",
               "--out", str(tmp_path / "x.pt")])
    err = capsys.readouterr().err.strip()
    assert rc == 130 and err.startswith("interrupted: the training state") and "resumes" in err


def test_a_resume_state_of_another_recipe_is_set_aside(tmp_path):
    from representations.dface import pretrain

    kw = dict(preset="tiny", steps=6, batch_size=4, pairs=8, scale="tiny", log_every=1, save_every=2)
    out = tmp_path / "ckpt.pt"

    def stop(msg):
        if msg.startswith("step 3/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain("synthetic", out, log=stop, lr=1e-3, **kw)
    said = []
    other = pretrain("synthetic", out, log=said.append, lr=5e-4, **kw)
    assert any("of another recipe: starting over" in m for m in said)
    assert other["sha256"] == pretrain("synthetic", tmp_path / "ref.pt", log=lambda m: None, lr=5e-4, **kw)["sha256"]


# ---------------------------------------------------------------- other databases as the start of crossfit


def _crossfit_cfg(root, out, ckpt, dataset="casme2"):
    from benchmark.config import resolve

    return resolve(dict(rep="dface", model="logreg", protocol="cde", dataset=dataset, data_root=str(root),
                        out=str(out), n_boot=10, rep_params={"preset": "tiny", "pretrain": "crossfit", "crossfit_k": 3,
                                                             "crossfit_steps": 2, "checkpoint": str(ckpt)}))


def test_crossfit_starts_from_other_databases_and_records_them(synthetic_tiny, rep_cache, tmp_path, capsys):
    from benchmark.plan import plan, run_header
    from benchmark.runner import run_fold

    ckpt = tmp_path / "not-casme2.pt"
    vox = tmp_path / "vox"
    write_video(vox / "id00012" / "abc" / "00001.mp4")
    assert main(["pretrain", "dface", "--frames", str(synthetic_tiny), "--datasets", "samm,smic", "--frames", str(vox),
                 "--preset", "tiny", "--steps", "2", "--pairs", "12", "--out", str(ckpt), "--log-every", "0"]) == 0
    _, meta = load_checkpoint(ckpt)
    subjects = meta["trained_on"]["subjects"]
    assert sorted(meta["trained_on"]["datasets"]) == [f"folder:{vox.resolve()}", "samm", "smic"]
    assert "vox:id00012" in subjects and any(s.startswith("samm/") for s in subjects)
    assert not any(s.startswith("casme2/") for s in subjects) and meta["recipe"]["datasets"] == ["samm", "smic"]

    p = plan(_crossfit_cfg(synthetic_tiny, tmp_path / "runs", ckpt))
    cf = run_header(p)["crossfit"]
    assert cf["init"]["sha256"] == __import__("hashlib").sha256(ckpt.read_bytes()).hexdigest()
    assert set(cf["init"]["trained_on"]) >= {"samm", "smic"} and cf["init"]["cost"]["steps"] == 2
    assert cf["init"]["cost"]["pairs"] == 12 and cf["init"]["cost"]["seconds"] > 0
    assert all(c["steps"] == 2 and c["seconds"] > 0 for c in cf["checkpoints"])
    for name, params in p.fold_rep_params.items():  # each fold's checkpoint: samm + vox + the other groups
        _, m = load_checkpoint(params["checkpoint"])
        assert "vox:id00012" in m["trained_on"]["subjects"] and name not in m["trained_on"]["subjects"]
    assert run_fold(p, p.folds[0], 0, 0, None).contaminated_subjects == ()

    # a start that saw the run's subjects is refused before K checkpoints are built on it
    with pytest.raises(ValueError, match="starting checkpoint was trained on .* subject"):
        plan(_crossfit_cfg(synthetic_tiny, tmp_path / "runs", ckpt, dataset="samm"))


def test_an_unknown_database_name_is_one_line(synthetic_tiny, tmp_path, capsys):
    rc = main(["pretrain", "dface", "--frames", str(synthetic_tiny), "--datasets", "sam", "--preset", "tiny",
               "--steps", "1", "--pairs", "2", "--out", str(tmp_path / "x.pt")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err == ["error: --datasets: sam is no database with frames (known: casme2, casme3, samm, smic)"]
    rc = main(["pretrain", "dface", "--frames", "synthetic", "--datasets", "samm", "--preset", "tiny",
               "--steps", "1", "--pairs", "2", "--out", str(tmp_path / "x.pt")])
    assert rc == 2 and capsys.readouterr().err.strip() == "error: --datasets names databases of a data root, " \
        "and no --frames source is one"


# ---------------------------------------------------------------- no face on an onset frame


def test_no_face_on_a_blank_frame_is_nan_landmarks(tmp_path):
    """The mesh's contract: NaN, never a made-up face; the DFE representations turn it into a
    recorded fallback (``no_face`` / ``no_face_clip`` / ``no_face_onset``, tests/test_dfe*.py)."""
    pytest.importorskip("mediapipe")
    from representations._landmarks import N_POINTS, N_REFINED, mesh_landmarks

    blank = np.full((120, 100, 3), 128, np.uint8)
    for refine, n in ((False, N_POINTS), (True, N_REFINED)):
        lm = mesh_landmarks(blank, refine=refine)
        assert lm.shape == (n, 3) and np.isnan(lm).all()
    assert np.isnan(mesh_landmarks(blank[..., 0])).all()  # grayscale too

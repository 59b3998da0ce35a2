"""``benchmark evaluate``: published per-fold checkpoints scored through the suite's run path.

The STSTNet adapter is checked against the public three-stream module on random
inputs; bad weight folders are one-line errors raised in planning, before any
prediction; on the real data (``../shared/data``) the 68 published checkpoints
must give the published figures and every prediction of the published log.
"""
import json
import re

import numpy as np
import pytest
import torch
from torch import nn

from benchmark.cli import main
from benchmark.config import resolve
from benchmark.runner import execute, load_metrics, plan
from models.ststnet import STSTNet
from tests.test_runner import write_flow_root

PUBLISHED = ("megc2019", "published", "STSTNet")


class PublicSTSTNet(nn.Module):
    """The STSTNet authors' module, as in their public script (three streams, then ``fc``)."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 3, kernel_size=3, padding=2)
        self.conv2 = nn.Conv2d(in_channels, 5, kernel_size=3, padding=2)
        self.conv3 = nn.Conv2d(in_channels, 8, kernel_size=3, padding=2)
        self.relu = nn.ReLU()
        self.bn1 = nn.BatchNorm2d(3)
        self.bn2 = nn.BatchNorm2d(5)
        self.bn3 = nn.BatchNorm2d(8)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=3, padding=1)
        self.avgpool = nn.AvgPool2d(kernel_size=2, stride=2, padding=0)
        self.dropout = nn.Dropout(p=0.5)
        self.fc = nn.Linear(in_features=5 * 5 * 16, out_features=out_channels)

    def forward(self, x):
        x1 = self.dropout(self.maxpool(self.bn1(self.relu(self.conv1(x)))))
        x2 = self.dropout(self.maxpool(self.bn2(self.relu(self.conv2(x)))))
        x3 = self.dropout(self.maxpool(self.bn3(self.relu(self.conv3(x)))))
        x = self.avgpool(torch.cat((x1, x2, x3), 1))
        return self.fc(x.view(x.size(0), -1))


def public_net(seed: int, n_classes: int = 3) -> PublicSTSTNet:
    """A public module with random weights and random (trained-looking) BatchNorm statistics."""
    torch.manual_seed(seed)
    net = PublicSTSTNet(3, n_classes)
    with torch.no_grad():
        for bn in (net.bn1, net.bn2, net.bn3):
            bn.running_mean.uniform_(0, 60)
            bn.running_var.uniform_(100, 2000)
            bn.weight.uniform_(0.5, 2)
            bn.bias.uniform_(-1, 1)
            bn.num_batches_tracked.fill_(7)
    return net.eval()


def write_weights(folder, stems, n_classes: int = 3, edit=None):
    """One public-layout checkpoint per subject stem; ``edit(stem, state_dict)`` may spoil one."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, stem in enumerate(stems):
        sd = public_net(k, n_classes).state_dict()
        if edit:
            sd = edit(stem, sd) or sd
        torch.save(sd, folder / f"{stem}.pth")
    return folder


# ---------------------------------------------------------------- the adapter
@pytest.mark.parametrize("n_classes", [3, 5])
def test_ststnet_adapter_equals_public_module(n_classes):
    ref = public_net(3, n_classes)
    m = STSTNet().load_published(ref.state_dict(), (3, 28, 28), n_classes)
    x = torch.rand(16, 3, 28, 28) * 255
    with torch.no_grad():
        want = ref(x)
        got = m.net_(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-5)
    np.testing.assert_allclose(m.predict_proba(x.numpy()), torch.softmax(want, 1).numpy(), atol=1e-5)
    assert m.weights_source_ == "published"
    fused = m.net_.state_dict()
    assert torch.equal(fused["conv.weight"][3:8], ref.conv2.weight)  # streams concatenated in order
    assert torch.equal(fused["bn.running_var"][8:], ref.bn3.running_var)


def test_adapter_names_first_bad_key():
    sd = public_net(0).state_dict()
    sd["conv2.weight"] = sd["conv2.weight"][:4]
    with pytest.raises(ValueError, match=r"key 'conv2.weight' has shape \(4, 3, 3, 3\), expected \(5, 3, 3, 3\)"):
        STSTNet().load_published(sd, (3, 28, 28), 3)
    sd = public_net(0).state_dict()
    del sd["bn3.bias"]
    with pytest.raises(ValueError, match=r"key 'bn3.bias' missing"):
        STSTNet().load_published(sd, (3, 28, 28), 3)
    sd = {"module." + k: v for k, v in public_net(0).state_dict().items()}
    with pytest.raises(ValueError, match=r"unexpected key 'module.conv1.weight'"):
        STSTNet().load_published(sd, (3, 28, 28), 3)


# ---------------------------------------------------------------- through the run path
SUBJECTS = ["sub01", "sub02", "sub03", "s01", "s02", "s03", "006", "007", "008"]  # write_flow_root's 9


@pytest.fixture
def flow_root(tmp_path):
    return write_flow_root(tmp_path / "data")


def _evaluate(root, weights, out, *extra):
    return main(["evaluate", "--model", "ststnet", "--protocol", "cde", "--rep", "precomputed",
                 "--data-root", str(root), "--weights", str(weights), "--out", str(out),
                 "--n-boot", "20", "--quiet", *extra])


def test_evaluate_writes_an_ordinary_run_folder_with_the_checkpoints_predictions(flow_root, tmp_path, capsys):
    weights = write_weights(tmp_path / "w", SUBJECTS)
    assert _evaluate(flow_root, weights, tmp_path / "runs") == 0
    assert "published weights" in capsys.readouterr().out
    cfg = resolve({"rep": "precomputed", "model": "ststnet", "protocol": "cde", "data_root": str(flow_root),
                   "out": str(tmp_path / "runs"), "n_boot": 20, "selection": "published-weights",
                   "weights": str(weights)})
    run = tmp_path / "runs" / cfg.run_id()
    for f in ("config.json", "metrics.json", "predictions.csv", "confusion.png"):
        assert (run / f).exists(), f
    header = json.loads((run / "config.json").read_text())
    assert header["config"]["weights"] == str(weights) and header["config"]["selection"] == "published-weights"
    pw = header["published_weights"]
    assert pw["dir"] == str(weights) and sorted(pw["files"]) == sorted(s + ".pth" for s in SUBJECTS)
    import hashlib

    assert pw["files"]["s02.pth"] == hashlib.sha256((weights / "s02.pth").read_bytes()).hexdigest()
    m = load_metrics(run)
    assert m["selection"] == "published-weights" and not m["oracle"]
    # each fold's predictions are those of the public module loaded from its file
    p = plan(cfg)
    X = p.rep.transform(p.sel.samples)
    for fold in p.folds:
        rec = json.loads((run / "folds" / "seed0" / (fold.name.replace("/", "_") + ".json")).read_text())
        stem = fold.name.rsplit("/", 1)[-1]
        assert rec["weights_source"].endswith(f"{stem}.pth sha256:{pw['files'][stem + '.pth']}")
        ref = public_net(SUBJECTS.index(stem))
        with torch.no_grad():
            want = torch.softmax(ref(torch.as_tensor(np.ascontiguousarray(X[fold.test])).float()), 1).numpy()
        np.testing.assert_allclose(rec["proba"], want, atol=1e-5)


def test_dataset_part_of_a_composite_accepts_the_other_databases_checkpoints(flow_root, tmp_path):
    weights = write_weights(tmp_path / "w", SUBJECTS)
    cfg = resolve({"rep": "precomputed", "model": "ststnet", "protocol": "cde", "dataset": "casme2",
                   "data_root": str(flow_root), "out": str(tmp_path / "runs"), "n_boot": 20,
                   "selection": "published-weights", "weights": str(weights)})
    assert sorted(plan(cfg).weights["folds"].values()) == ["sub01.pth", "sub02.pth", "sub03.pth"]


def _bad(flow_root, weights, tmp_path, capsys, monkeypatch, *extra) -> str:
    """Run the CLI on a bad folder: exit 2, one line on stderr, and no prediction was made."""
    import models.base

    def no_prediction(*_a, **_k):
        raise AssertionError("a prediction was made before the weights folder was checked")

    monkeypatch.setattr(models.base.TorchClassifier, "predict_proba", no_prediction)
    assert _evaluate(flow_root, weights, tmp_path / "runs", *extra) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert not (tmp_path / "runs").exists()  # planning failed: no run folder was made
    return err


def test_subject_without_checkpoint(flow_root, tmp_path, capsys, monkeypatch):
    weights = write_weights(tmp_path / "w", [s for s in SUBJECTS if s != "s02"])
    err = _bad(flow_root, weights, tmp_path, capsys, monkeypatch)
    assert "no checkpoint for test subject(s) smic/s02" in err and "s02.pth" in err


def test_extra_checkpoint(flow_root, tmp_path, capsys, monkeypatch):
    weights = write_weights(tmp_path / "w", SUBJECTS + ["sub99"])
    err = _bad(flow_root, weights, tmp_path, capsys, monkeypatch)
    assert "checkpoint(s) sub99.pth name no test subject of protocol cde" in err


def test_checkpoint_with_a_wrong_shape_names_file_and_key(flow_root, tmp_path, capsys, monkeypatch):
    def spoil(stem, sd):
        if stem == "007":
            sd["bn2.running_mean"] = torch.zeros(6)

    weights = write_weights(tmp_path / "w", SUBJECTS, edit=spoil)
    err = _bad(flow_root, weights, tmp_path, capsys, monkeypatch)
    assert "007.pth: key 'bn2.running_mean' has shape (6,), expected (5,)" in err


def test_checkpoint_with_other_keys_names_file_and_key(flow_root, tmp_path, capsys, monkeypatch):
    def rename(stem, sd):
        if stem == "sub02":
            return {k.replace("conv3", "conv_3"): v for k, v in sd.items()}

    weights = write_weights(tmp_path / "w", SUBJECTS, edit=rename)
    err = _bad(flow_root, weights, tmp_path, capsys, monkeypatch)
    assert "sub02.pth: unexpected key 'conv_3.weight'" in err


def test_unreadable_checkpoint(flow_root, tmp_path, capsys, monkeypatch):
    weights = write_weights(tmp_path / "w", SUBJECTS)
    (weights / "s01.pth").write_text("not a checkpoint")
    err = _bad(flow_root, weights, tmp_path, capsys, monkeypatch)
    assert "s01.pth: not a readable PyTorch state dict" in err


def test_weights_folder_of_another_protocol(flow_root, tmp_path, capsys, monkeypatch):
    # CASME II 5-class LOSO weights (26 subjects) offered for the composite
    weights = write_weights(tmp_path / "w", [f"sub{i:02d}" for i in range(1, 27)], n_classes=5)
    err = _bad(flow_root, weights, tmp_path, capsys, monkeypatch)
    assert "does not fit protocol cde (9 folds)" in err and "another protocol" in err
    # same subjects, other class set: the head's shape says so
    weights = write_weights(tmp_path / "w5", SUBJECTS, n_classes=5)
    err = _bad(flow_root, weights, tmp_path, capsys, monkeypatch)
    assert "key 'fc.weight' has shape (5, 400), expected (3, 400)" in err and "3 classes" in err


def test_model_without_adapter(flow_root, tmp_path, capsys, monkeypatch):
    weights = write_weights(tmp_path / "w", SUBJECTS)
    assert main(["evaluate", "--model", "svm", "--protocol", "cde", "--data-root", str(flow_root),
                 "--weights", str(weights), "--out", str(tmp_path / "runs")]) == 2
    assert "model 'svm' has no adapter for published checkpoints" in capsys.readouterr().err


def test_weights_need_the_published_weights_selection(flow_root, tmp_path):
    weights = write_weights(tmp_path / "w", SUBJECTS)
    base = {"rep": "precomputed", "model": "ststnet", "protocol": "cde", "data_root": str(flow_root),
            "out": str(tmp_path / "runs")}
    with pytest.raises(ValueError, match="--weights is for selection 'published-weights'"):
        plan(resolve({**base, "weights": str(weights)}))
    with pytest.raises(ValueError, match="needs a weights folder"):
        plan(resolve({**base, "selection": "published-weights"}))


# ---------------------------------------------------------------- the published STSTNet run
def parse_log(text: str) -> dict[str, tuple[list[int], list[int]]]:
    """subject -> (predicted, true) labels of the published log (samples by label, then file name)."""
    rows = re.findall(r"Subject: (\S+)\s*\nPredicted\s*: \[([^\]]*)\]\s*\nGround Truth: \[([^\]]*)\]", text)
    ints = lambda s: [int(v) for v in s.split(",") if v.strip()]
    return {sub: (ints(pred), ints(true)) for sub, pred, true in rows}


@pytest.mark.realdata
def test_published_ststnet_checkpoints_give_the_published_run(shared_data, tmp_path):
    weights = shared_data.joinpath(*PUBLISHED)
    if not (weights / "STSTNet_python_logfile.txt").exists():
        pytest.skip(f"published STSTNet weights not found under {weights}")
    cfg = resolve({"rep": "precomputed", "model": "ststnet", "protocol": "cde", "data_root": str(shared_data),
                   "out": str(tmp_path / "runs"), "n_boot": 20, "selection": "published-weights",
                   "weights": str(weights), "device": "cpu"})
    run = execute(cfg, progress=False)
    m = load_metrics(run)
    o, db = m["metrics"]["overall"], m["metrics"]["per_database"]
    assert m["selection"] == "published-weights"
    assert round(o["uf1"]["mean"], 4) == 0.7209 and round(o["uar"]["mean"], 4) == 0.7250
    assert {k: round(b["uf1"]["mean"], 3) for k, b in db.items()} == {"casme2": 0.830, "samm": 0.599, "smic": 0.687}
    assert len(json.loads((run / "config.json").read_text())["published_weights"]["files"]) == 68
    # every one of the 442 predictions is the log's
    log = parse_log((weights / "STSTNet_python_logfile.txt").read_text())
    p = plan(cfg)
    assert len(log) == len(p.folds) == 68
    n = 0
    for fold in p.folds:
        rec = json.loads((run / "folds" / "seed0" / (fold.name.replace("/", "_") + ".json")).read_text())
        order = sorted(range(len(rec["test"])), key=lambda j: (
            int(p.sel.y[rec["test"][j]]), p.sel.samples[rec["test"][j]].extras["flow"].name))
        pred, true = log[fold.name.rsplit("/", 1)[-1]]
        assert [int(p.sel.y[rec["test"][j]]) for j in order] == true, fold.name
        assert [rec["pred"][j] for j in order] == pred, fold.name
        n += len(pred)
    assert n == 442

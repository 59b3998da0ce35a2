"""`run`'s flags are generated from RunConfig's fields: a new field is a flag without editing the CLI."""
from __future__ import annotations

import dataclasses

from benchmark.cli import RUN_HELP, build_parser, run_settings
from benchmark.config import RunConfig, resolve


def _cfg(argv: list[str], yaml=None) -> RunConfig:
    args = build_parser().parse_args(["run", *argv])
    return resolve(run_settings(args), yaml)


def test_every_field_has_a_flag_with_help():
    run = build_parser()._subparsers._group_actions[0].choices["run"]
    dests = {a.dest for a in run._actions}
    for f in dataclasses.fields(RunConfig):
        assert f.name in dests and RUN_HELP[f.name], f.name


def test_flags_become_the_config():
    cfg = _cfg(["--rep", "tvl1", "--model", "svm", "--protocol", "loso", "--data-root", "DATA", "--seeds", "1,2",
                "--epochs", "3", "--rep-param", "preprocess=face", "--model-param", "C=2.5", "--data-param",
                "frames=raw", "--workers", "2", "--allow-contamination", "--plugin", "mine", "--selection", "oracle"])
    assert (cfg.data, cfg.data_root, cfg.seeds, cfg.epochs, cfg.workers) == ("real", "DATA", (1, 2), 3, 2)
    assert cfg.rep_params == {"preprocess": "face"} and cfg.model_params == {"C": 2.5}
    assert cfg.data_params == {"frames": "raw"} and cfg.plugins == ("mine",)
    assert cfg.allow_contamination is True and cfg.selection == "oracle"


def test_synthetic_without_a_root_and_yaml_under_flags(tmp_path):
    assert _cfg(["--rep", "dface", "--model", "transformer", "--protocol", "cde"]).data == "synthetic"
    spec = tmp_path / "run.yaml"
    spec.write_text("data_root: YAMLROOT\nepochs: 7\nworkers: 2\n")
    cfg = _cfg(["--rep", "tvl1", "--model", "svm", "--protocol", "cde", "--config", str(spec), "--workers", "1"], spec)
    assert (cfg.data, cfg.data_root, cfg.epochs, cfg.workers) == ("real", "YAMLROOT", 7, 1)


def test_workers_takes_a_number_or_auto():
    base = ["--rep", "tvl1", "--model", "svm", "--protocol", "cde"]
    assert _cfg(base).workers == "auto" and _cfg([*base, "--workers", "2"]).workers == 2
    import pytest

    with pytest.raises(SystemExit):
        _cfg([*base, "--workers", "two"])

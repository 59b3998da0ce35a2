"""Arena specs (benchmark/arenas.py, benchmark/matrix/*.yaml) and the results index
(benchmark/index.py): validation, n/a cells, pre-registered seeds, sweeps of arenas, and the
index's account of every committed run folder."""
from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import yaml

from benchmark.arenas import ARENA_DIR, CHANCE, command, expand, load_arenas
from benchmark.cli import build_parser, run_settings
from benchmark.config import ConfigError, resolve
from benchmark.index import Index, canonical_runs, load_index, problems
from benchmark.sweep import load_spec, run_sweep

ROOT = Path(__file__).resolve().parents[1]


def _spec(**kw) -> dict:
    spec = {"arena": "tiny", "protocol": "cde", "data_root": "data", "out": "runs", "n_boot": 20,
            "rows": [{"precomputed": {"rep": "precomputed"}}, {"framediff": {"rep": "framediff"}},
                     {"lbptop": {"rep": "lbptop"}}],
            "columns": [{"linear probe": {"model": "logreg"}}, {"STSTNet": {"model": "ststnet", "seeds": [0, 1, 2]}}],
            "chance": {"rep": "precomputed", "model": "dummy", "seeds": [0, 1]},
            "reference": {"row": "precomputed", "column": "linear probe"}}
    spec.update(kw)
    return spec


def test_committed_arenas_load_with_their_preregistered_seeds():
    arenas = {a.name: a for a in load_arenas()}
    assert list(arenas) == ["cde", "cde-casme2", "loso-casme2", "stratified7", "ldo"]
    for name in ("cde-casme2", "loso-casme2"):
        a = arenas[name]
        assert a.reference == ("tvl1 · face", "STSTNet")
        sts = [c for c in a.cells if c.column == "STSTNet"]
        assert sts and all(c.cfg.seeds == (0, 1, 2) for c in sts if c.cfg)  # the whole column, fixed in advance
        assert all(c.cfg.selection == "fixed" for c in sts if c.cfg)
        # every cell that takes it handles a sample without frames the same way: one sample set
        takes = [c for c in a.cells if c.cfg and c.cfg.rep not in ("precomputed", "apex")]  # those read no frames
        assert takes and all(c.cfg.rep_params.get("on_missing") == "blank" for c in takes)
    for a in arenas.values():
        ref = a.reference_cell
        assert ref.cfg is not None and (len(ref.cfg.seeds) == 3 or ref.cfg.model in ("logreg", "svm"))
        assert a.chance is not None and a.chance.cfg.model == "dummy"


def test_an_incompatible_pair_of_the_cross_product_is_an_na_cell():
    a = expand(_spec())
    cell = a.cell("lbptop", "STSTNet")
    assert cell.cfg is None and "'vector'" in cell.reason
    assert a.cell("framediff", "STSTNet").cfg.seeds == (0, 1, 2)
    assert a.cell("lbptop", "linear probe").cfg.seeds == (0,)
    assert [c.row for c in a.runnable()][-1] == CHANCE


@pytest.mark.parametrize("change, message", [
    ({"cells": {"lbptop | STSTNet": {"seeds": [0]}}}, "named explicitly but cannot work"),
    ({"reference": {"row": "lbptop", "column": "STSTNet"}}, "the reference cell 'lbptop | STSTNet' cannot work"),
    ({"reference": {"row": "tvl1", "column": "STSTNet"}}, "is not a cell of this arena"),
    ({"rows": [{"tvl2": {"rep": "tvl2"}}]}, "did you mean tvl1"),
    ({"columns": [{"x": {"model": "logreg", "epoch": 3}}]}, "unknown key 'epoch'"),
    ({"rows": [{"a": {"rep": "lbptop"}}, {"a": {"rep": "mdmo"}}]}, "label 'a' is listed twice"),
    ({"cells": {"lbptop - STSTNet": {}}}, "is not 'row | column'"),
    ({"columns": [{"x": {"model": "logreg", "model_params": {"Cc": 1}}}]}, "has no such parameter"),
    ({"modles": []}, "unknown key 'modles'"),
    ({"chance": {"rep": "frames", "model": "dummy"}, "rows": [{"f": {"rep": "frames"}}]}, "linear probe"),
])
def test_bad_arena_specs_are_one_line_errors(change, message):
    with pytest.raises(ConfigError, match=message):
        expand(_spec(**change))


def test_the_command_of_a_cell_reproduces_its_run_id():
    for a in load_arenas():
        for cell in a.runnable()[:6]:
            args = build_parser().parse_args(shlex.split(command(cell.cfg))[3:])
            assert resolve(run_settings(args), args.config).run_id() == cell.run_id, command(cell.cfg)


def test_an_arena_sweep_runs_its_cells_skips_na_and_never_reruns_a_finished_run(synthetic_tiny, tmp_path):
    spec = _spec(data_root=str(synthetic_tiny), out=str(tmp_path / "runs"),
                 columns=[{"linear probe": {"model": "logreg"}}, {"SVM": {"model": "svm"}}],
                 rows=[{"precomputed": {"rep": "precomputed"}}, {"lbptop": {"rep": "lbptop"}}])
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True))
    sweep = load_spec(path, columns=("linear probe",))
    assert {c.model for c in sweep.configs} == {"logreg", "dummy"}  # the chance row comes along
    with pytest.raises(ConfigError, match="no column 'SVN'"):
        load_spec(path, columns=("SVN",))
    res = run_sweep(sweep, progress=False)
    assert not res.failed and len(res.finalized) == 3
    # a committed run keeps metrics.json but not its fold files: a second sweep leaves it alone
    run = res.finalized[0]
    before = (run / "metrics.json").read_text()
    import shutil

    shutil.rmtree(run / "folds")
    again = run_sweep(load_spec(path, columns=("linear probe",)), progress=False)
    assert not again.ran and (run / "metrics.json").read_text() == before

    arena = expand(spec, where=str(path))
    runs = canonical_runs(arena, Index(), tmp_path / "runs")
    assert runs["precomputed | linear probe"] and runs["precomputed | SVM"] is None
    # the SVM column is not run: no problem; an extra folder is reported, as is an index entry without a folder
    (tmp_path / "runs" / "stray_run").mkdir()
    (tmp_path / "runs" / "stray_run" / "metrics.json").write_text("{}")
    index = Index(studies={"gone_run": "a study"})
    found = problems([arena], index, tmp_path / "runs")
    assert any("stray_run" in p and "in no index entry" in p for p in found)
    assert any("gone_run" in p and "has no run folder" in p for p in found)
    assert not [p for p in found if "stray_run" not in p and "gone_run" not in p]


def test_index_file_errors_and_reuse_of_unknown_cells(tmp_path):
    bad = tmp_path / "index.yaml"
    bad.write_text(yaml.safe_dump({"superseded": [{"run": "x"}]}))
    with pytest.raises(ConfigError, match=r"superseded\[0\]: needs run, by, why"):
        load_index(bad)
    bad.write_text(yaml.safe_dump({"extra": []}))
    with pytest.raises(ConfigError, match="keys among"):
        load_index(bad)
    arena = expand(_spec())
    index = Index(reuse={("tiny", "lbptop | STSTNet"): ("r", ""), ("tiny", "nope | x"): ("r", "")})
    found = problems([arena], index, tmp_path)
    assert any("is n/a" in p for p in found) and any("is not a cell" in p for p in found)


def test_the_committed_index_accounts_for_every_committed_run():
    """Every folder in results/runs is a canonical cell or named in results/index.yaml, and every
    run the index names exists (the check `benchmark check` makes)."""
    assert problems(load_arenas(ARENA_DIR), load_index(ROOT / "results" / "index.yaml"), ROOT / "results" / "runs") == []


def test_benchmark_check_fails_on_a_run_folder_in_no_index_entry(tmp_path):
    from benchmark.check import _check_index

    (tmp_path / "runs" / "stray_run").mkdir(parents=True)
    (tmp_path / "runs" / "stray_run" / "metrics.json").write_text("{}")
    (tmp_path / "index.yaml").write_text(yaml.safe_dump({"studies": [{"study": "s", "runs": ["gone_run"]}]}))
    found = _check_index(tmp_path)
    assert any("stray_run" in f for f in found) and any("gone_run" in f for f in found)

"""The leaderboard: golden renderings of a tiny arena (markdown, LaTeX, CSV, JSON), the README block,
the plots, and the rules that hold whatever the layout (real vs synthetic, oracle and published
weights apart, empty or missing runs folders)."""
import json
import os
import re
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from benchmark import export, glance
from benchmark.leaderboard import LeaderboardError, build_board, collect, render
from benchmark.results import load_result
from benchmark.runner import execute
from tests.test_runner import write_flow_root

GOLDEN = Path(__file__).parent / "golden"
HISTORIC = Path(__file__).parent / "historic_results"

# Relative data_root and out: run ids hash the config, so they are the same in every tmp folder.
# The title and label carry LaTeX specials (& % _ #) on purpose.
TINY = textwrap.dedent("""\
    arena: tiny
    title: "Tiny arena — 18 samples & 6 subjects (100% flow_images)"
    protocol: cde
    data_root: data
    out: results/runs
    n_boot: 50
    seeds: [0]
    rows:
      - precomputed · cv2: {rep: precomputed}
      - precomputed · rgb: {rep: precomputed, rep_params: {channel_order: rgb}}
      - lbptop: {rep: lbptop}
    columns:
      - linear probe: {model: logreg}
      - SVM: {model: svm, seeds: [0, 1], label: "RBF kernel & 2 seeds #cheap"}
      - STSTNet: {model: ststnet, epochs: 1}
    chance: {rep: precomputed, model: dummy, seeds: [0, 1]}
    reference: {row: precomputed · cv2, column: linear probe}
    published:
      - {method: "Method_A (2020)", uf1: 0.5, uar: 0.55, source: "papers/x Table 1"}
    cells:
      precomputed · rgb | linear probe: {model_params: {standardize: false}}
    notes:
      - "STSTNet is never run here."
    """)


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{path} differs (UPDATE_GOLDEN=1 rewrites it after a wanted change)"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A results folder of the tiny arena's cheap cells (logreg, dummy), an ablation run, the index
    and a comparisons file, made in a tmp folder that is the working directory."""
    from benchmark.arenas import load_arena

    root = tmp_path_factory.mktemp("tiny")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("MER_BENCHMARK_CACHE", str(root / "cache"))
        mp.setenv("MER_BENCHMARK_JOBS", "1")
        write_flow_root(root / "data", n_sub=2, n_per=3, signal=4)
        (root / "arenas").mkdir()
        (root / "arenas" / "tiny.yaml").write_text(TINY)
        arena = load_arena(root / "arenas" / "tiny.yaml")
        runs = {c.key: execute(c.cfg, progress=False).name for c in arena.runnable()
                if c.cfg.rep == "precomputed" and c.cfg.model in ("logreg", "svm", "dummy")}
        base = runs["precomputed · cv2 | linear probe"]
        extra = execute(replace(arena.cell("precomputed · cv2", "linear probe").cfg, model_params={"C": 10.0}),
                        progress=False).name
        (root / "results" / "index.yaml").write_text(
            f"ablations:\n  - {{title: 'C = 10 instead of 1', base: {base}, runs: [{extra}]}}\n")
        ref, other = base, runs["precomputed · rgb | linear probe"]
        comparisons = {"arena": "tiny", "reference": {"cell": "precomputed · cv2 | linear probe", "run": ref},
                       "comparisons": [{"cell": "precomputed · rgb | linear probe", "run": other,
                                        "uf1": {"delta": -0.0123, "low": -0.05, "high": -0.001, "p": 0.01},
                                        "uar": {"delta": -0.01, "low": -0.04, "high": 0.02, "p": 0.4},
                                        "excludes_zero": True, "p_holm": 0.03, "holm_significant": True}],
                       "best_vs_second": [], "missing": [{"cell": "precomputed · cv2 | SVM",
                                                          "run": runs["precomputed · cv2 | SVM"],
                                                          "why": "no predictions.csv"}]}
        (root / "results" / "comparisons").mkdir()
        (root / "results" / "comparisons" / "tiny.json").write_text(json.dumps(comparisons))
        yield root


def _board(root: Path):
    """The tiny board, less what differs between machines (training times)."""
    entries = [replace(e, result=replace(e.result, wall_s=0, fold_seconds=0)) for e in collect([root / "results/runs"])]
    return build_board([root / "results/runs"], arenas=root / "arenas", entries=entries)


def test_golden_renderings_of_a_tiny_arena(tiny):
    board = _board(tiny)
    m = board.matrices[0]
    assert [c.status for c in m.cells] == ["run", "run", "not run", "run", "run", "not run", "not run", "not run", "n/a"]
    _golden("leaderboard_tiny.md", render(board))
    _golden("leaderboard_tiny.tex", export.to_latex(board.matrices))
    _golden("leaderboard_tiny.csv", export.to_csv(board.matrices))
    _golden("leaderboard_tiny.json", export.to_json(board.matrices))


def test_the_matrix_shows_the_paired_delta_best_seeds_and_chance(tiny):
    text = render(_board(tiny))
    matrix = text.split("| UF1 |")[1].split("\n\n")[0]
    rows = {line.split(" | ")[0].strip("| "): line for line in matrix.splitlines()[2:]}
    assert rows["lbptop"].endswith("| – | – | n/a |")  # not run, not run, incompatible
    assert "×2" in rows["precomputed · cv2"] and "**" in rows["precomputed · cv2"]
    assert rows["*chance (stratified dummy)*"].count("[") == 1  # the chance row is last, its figure once
    assert list(rows)[-1] == "*chance (stratified dummy)*"
    assert "-0.012 [-0.05, -0.00]†‡" in text and "| ref |" in text and "| · |" in text
    assert "not kept with committed runs" in text
    assert "¹ RBF kernel & 2 seeds #cheap" in text  # the column label is a footnote
    assert "(unpaired)" in text.split("## Ablations")[1]  # no ablations.json: the difference of means


def test_latex_escapes_and_marks_the_best(tiny):
    tex = export.to_latex(_board(tiny).matrices)
    assert r"18 samples \& 6 subjects (100\% flow\_images)" in tex and r"\#cheap" in tex
    assert tex.count(r"\begin{tabular}") == 1 and r"\toprule" in tex and r"\textbf{" in tex
    assert "n/a" in tex and " -- " in tex and r"precomputed \textperiodcentered{} cv2" in tex


def test_a_latex_export_of_an_empty_arena_is_one_clear_line(tiny, tmp_path, capsys):
    from benchmark.cli import main

    (tmp_path / "arenas").mkdir()
    (tmp_path / "arenas" / "empty.yaml").write_text(TINY.replace("arena: tiny", "arena: empty").replace(
        "data_root: data", "data_root: elsewhere"))  # other run ids: no cell has a run folder
    rc = main(["leaderboard", "--format", "latex", "--runs", str(tiny / "results/runs"), "--arenas",
               str(tmp_path / "arenas")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "arena 'empty' has no finished cell" in err and "\n" not in err and "Traceback" not in err


def test_csv_and_json_exports_from_the_command_line(tiny, tmp_path):
    from benchmark.cli import main

    for fmt in ("csv", "json"):
        out = tmp_path / f"m.{fmt}"
        assert main(["leaderboard", "--format", fmt, "--runs", str(tiny / "results/runs"), "--arenas",
                     str(tiny / "arenas"), "--out", str(out)]) == 0
        assert "precomputed · rgb" in out.read_text()
    cells = json.loads((tmp_path / "m.json").read_text())["arenas"][0]["cells"]
    assert {c["status"] for c in cells} == {"run", "not run", "n/a"} and cells[-1]["row"] == "chance (stratified dummy)"
    assert not (tmp_path / "LEADERBOARD.md").exists()


def test_markdown_writes_the_plots_and_the_readme_block(tiny, tmp_path):
    from PIL import Image

    from benchmark.cli import main

    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nintro\n\n{glance.START}\nold\n{glance.END}\n\n## next\n")
    out = tmp_path / "board" / "LEADERBOARD.md"
    assert main(["leaderboard", "--runs", str(tiny / "results/runs"), "--arenas", str(tiny / "arenas"), "--out",
                 str(out), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("# x\n\nintro\n\n<!-- results-at-a-glance:start -->") and text.endswith(f"{glance.END}\n\n## next\n")
    assert "old" not in text and "| pixel flow |" in text and "precomputed · cv2 × linear probe" in text
    assert "| appearance | – | 0 | not run yet |" in text and "*published:* Method_A (2020) | 0.500" in text
    assert re.search(r"\| pixel flow \| [0-9.]+ \[[0-9., ]+\] \| 4 \| ", text)  # 2 rows x 2 columns
    for name in ("tiny_heatmap.png", "tiny_dots.png"):
        png = out.parent / "plots" / name
        assert f"plots/{name}" in out.read_text() and png.exists()
        assert Image.open(png).size[0] <= 1600
    readme.write_text("# no markers\n")
    before = out.read_text()
    out.write_text("committed")
    assert main(["leaderboard", "--runs", str(tiny / "results/runs"), "--arenas", str(tiny / "arenas"), "--out",
                 str(out), "--readme", str(readme)]) == 2
    assert out.read_text() == "committed" and readme.read_text() == "# no markers\n"  # nothing half-written
    assert before.startswith("<!-- generated")


def test_the_readme_block_is_replaced_between_the_markers_only():
    text = f"a\n{glance.START}\nold\n{glance.END}\nb\n"
    assert glance.replace_block(text, f"{glance.START}\nnew\n{glance.END}") == f"a\n{glance.START}\nnew\n{glance.END}\nb\n"
    for broken in ("a\nb\n", f"a\n{glance.END}\n{glance.START}\n"):
        with pytest.raises(LeaderboardError, match="markers"):
            glance.replace_block(broken, "x")


def _one_run(folder: Path, name: str, header=None, **changes):
    """A run folder holding a committed-shape metrics.json (and a config.json if given)."""
    r = load_result(next(HISTORIC.glob("v1_training-weights-per-database__*.json")))
    r = replace(r, run_id=name, **changes)
    (folder / name).mkdir(parents=True)
    (folder / name / "metrics.json").write_text(json.dumps(r.to_json()))
    if header is not None:
        (folder / name / "config.json").write_text(json.dumps(header))
    return r


def _render(*run_dirs) -> str:
    """Without arenas (the repository's would cost an import of every model)."""
    empty = Path(run_dirs[0]).parent / "no-arenas"
    empty.mkdir(exist_ok=True)
    return render(build_board([Path(d) for d in run_dirs], arenas=empty))


def _with_uf1(r, mean):
    o = r.metrics.overall
    return replace(r.metrics, overall=replace(o, uf1=replace(o.uf1, mean=mean)))


def test_the_identity_probe_is_sorted_by_representation_and_shows_chance(tmp_path):
    r = load_result(next(HISTORIC.glob("v1_training-weights-per-database__*.json")))
    subjects = tuple(f"casme2/sub{i:02d}" for i in range(20))
    for rep, uf1 in (("zflow", 0.9), ("apex", 0.2), ("mflow", 0.5)):
        _one_run(tmp_path / "runs", f"identity-casme2_{rep}_logreg", rep=rep, protocol="identity", dataset="casme2",
                 classes=subjects, metrics=_with_uf1(r, uf1))
    text = _render(tmp_path / "runs")
    probe = text.split("## Probes")[1].split("\n## ")[0]
    assert "lower = less identity leaked" in probe and "0.050 (1/20)" in probe
    rows = [line.split(" | ")[0].strip("| ") for line in probe.splitlines() if line.startswith("| ") and "logreg" in line]
    assert rows == ["apex", "mflow", "zflow"]  # by name, not by score (zflow leaks most)


def test_real_synthetic_and_oracle_rows_never_share_a_table(tmp_path):
    runs = tmp_path / "runs"
    _one_run(runs, "cde_real_fixed")
    _one_run(runs, "cde_real_oracle", selection="oracle")
    _one_run(runs, "cde_synthetic_fixed", data="synthetic")
    text = _render(runs)
    tables = [t for t in text.split("\n### ")[1:]]
    for t in tables:
        assert not ("`cde_real_fixed`" in t and "`cde_synthetic_fixed`" in t)
    oracle = text.split("## Oracle selection")[1].split("\n## ")[0]
    assert "`cde_real_oracle`" in oracle and "`cde_real_fixed`" not in oracle
    appendix = text.split("## Appendix")[1]
    assert "real data" in appendix and "synthetic data" in appendix


def test_published_weights_are_listed_apart_and_never_ranked_with_trained_runs(tmp_path):
    trained = _one_run(tmp_path / "runs", "cde_precomputed_ststnet_fixed_x")
    _one_run(tmp_path / "runs", "cde_precomputed_ststnet_published-weights_x", selection="published-weights",
             metrics=_with_uf1(trained, 0.99))
    text = _render(tmp_path / "runs")
    published = text.split("## Published weights re-scored")[1].split("\n## ")[0]
    assert "nothing was trained" in published and "published-weights_x" in published and "fixed_x" not in published
    assert "## Oracle selection" not in text


def test_a_modified_list_and_blank_inputs_are_marked_in_the_row(tmp_path):
    """Before: a run on a list with one row removed, or on blank inputs, was ranked beside clean
    ones with no marker."""
    official = {"protocol": {"source": "megc2019"}, "n_samples": 442, "n_subjects": 68, "dataset_defects": []}
    runs = tmp_path / "runs"
    _one_run(runs, "cde_a_clean", official)
    _one_run(runs, "cde_b_short", {**official, "n_samples": 441})  # made before the list was checked
    _one_run(runs, "cde_c_flagged", {**official, "dataset_defects": [{"kind": "differs_from_official"}],
                                     "inputs": {"blank": 3, "dropped": 0}})
    rows = {line.split("`")[-2]: line for line in _render(runs).splitlines() if line.count("`") >= 2}
    assert "official list" in rows["cde_a_clean"] and "MODIFIED" not in rows["cde_a_clean"]
    assert "MODIFIED list" in rows["cde_b_short"]
    assert "MODIFIED list" in rows["cde_c_flagged"] and "3 blank" in rows["cde_c_flagged"]
    assert "1 defects" in rows["cde_c_flagged"]
    assert "not indexed" in rows["cde_a_clean"]  # its role in the appendix


def test_a_run_in_two_runs_folders_is_listed_once(tmp_path):
    _one_run(tmp_path / "a", "cde_same_run")
    _one_run(tmp_path / "b", "cde_same_run")
    assert len(collect([tmp_path / "a", tmp_path / "b"])) == 1


def test_a_missing_or_empty_runs_folder_never_overwrites_the_leaderboard(tmp_path):
    from benchmark.cli import main

    board = tmp_path / "LEADERBOARD.md"
    board.write_text("committed")
    (tmp_path / "empty").mkdir()
    (tmp_path / "no-arenas").mkdir()
    args = ["--out", str(board), "--arenas", str(tmp_path / "no-arenas")]
    assert main(["leaderboard", "--runs", str(tmp_path / "typo"), *args]) == 2
    assert main(["leaderboard", "--runs", str(tmp_path / "empty"), *args]) == 2
    assert board.read_text() == "committed"
    assert main(["leaderboard", "--runs", str(tmp_path / "empty"), *args, "--allow-empty"]) == 0
    assert "No runs yet." in board.read_text()

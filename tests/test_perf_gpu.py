"""``python -m benchmark perf --sections gpu``: refused without CUDA, and its dry mode (the same
code on the CPU with tiny sizes) runs here so the GPU path cannot rot."""
import pytest
import torch

from benchmark.cli import main
from benchmark.perf import merge_sections
from benchmark.perf_gpu import TOLERANCE, gpu_section


def test_gpu_section_without_cuda_is_a_one_line_error(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["perf", "--sections", "gpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: perf --sections gpu needs a CUDA device") and "--dry" in err and "\n" not in err


def test_dry_figures_are_not_written(tmp_path, capsys):
    assert main(["perf", "--sections", "gpu", "--dry", "--out", str(tmp_path / "PERF.md")]) == 2
    assert not (tmp_path / "PERF.md").exists()


def test_gpu_section_dry_run_on_cpu(synthetic_tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("MER_BENCHMARK_CACHE", str(tmp_path / "cache"))  # the tiny tokenizer is built here
    text, fig = gpu_section(synthetic_tiny, dry=True, echo=False)
    assert text.startswith("**Dry run on the CPU")
    # (a) on the CPU the float32 / host-mask model is the CPU path itself: exactly equal
    assert fig["a"]["float32_max_diff"] == 0.0 and fig["a"]["float32_ok"] and TOLERANCE > 0
    # (b) stacked and sequential training agree (same seeds, same masks on the CPU)
    assert fig["b"]["folds"] == 4 and fig["b"]["agreement"] == 1.0 and fig["b"]["ratio"] > 0
    # (c) the card's main command ran through the run path; (d) one seed of the recipe, stacked
    assert 0 <= fig["c"]["uf1"] <= 1 and fig["d"]["seeds"] == 1
    assert "fold-parallel:" in text and "| (a)" not in text
    for part in ("(a)", "(b)", "(c)", "(d)"):
        assert part in text


def test_partial_perf_run_replaces_only_its_sections():
    old = "# Performance\n\nGenerated ...\n\n## Training\n\nold training\n\n## GPU\n\nnone lent\n"
    new = merge_sections(old, ["## GPU\n\nfigures\n"])
    assert "old training" in new and "figures" in new and "none lent" not in new
    assert new.index("## Training") < new.index("## GPU")
    added = merge_sections("# Performance\n\n## Training\n\nx\n", ["## GPU\n\ny\n"])
    assert added.endswith("## GPU\n\ny\n") and "x" in added
    # a complete CPU run (header + its sections) keeps the GPU section it did not run
    cpu = merge_sections(old, ["# Performance\n\nGenerated again\n", "## Training\n\nnew training\n"])
    assert "Generated again" in cpu and "new training" in cpu and "none lent" in cpu and "old training" not in cpu

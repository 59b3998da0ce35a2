"""User code registers through --plugin, YAML plugins: and entry points; the example plugin runs
from outside the package."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from benchmark.plugins import ENTRY_POINT_GROUP, PluginError, load_plugins

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "hoof_plugin" / "mer_hoof.py"


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": ""}  # the installed package only, as a user has it
    return subprocess.run([sys.executable, "-m", "benchmark", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)


def test_example_plugin_runs_from_outside_the_package(tmp_path, synthetic_tiny, rep_cache):
    res = _cli(["run", "--plugin", str(EXAMPLE), "--rep", "hoof", "--model", "logreg", "--protocol", "cde",
                "--dataset", "casme2", "--data-root", str(synthetic_tiny), "--out", str(tmp_path / "runs"),
                "--n-boot", "20", "--quiet", "--json"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    metrics = json.loads(res.stdout)
    assert metrics["rep"] == "hoof" and metrics["metrics"]["overall"]["n"] > 0
    header = json.loads((tmp_path / "runs" / metrics["run_id"] / "config.json").read_text())
    [plugin] = header["plugins"]
    assert plugin["module"] == "mer_hoof" and plugin["version"] == "0.1.0" and plugin["file"] == "mer_hoof.py"
    assert plugin["sha256"] == hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()
    assert header["rep_recipe"]["rep"] == "hoof"


def test_list_shows_a_plugin_and_its_pairs(tmp_path):
    res = _cli(["list", "--plugin", str(EXAMPLE)], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "hoof (vector)" in res.stdout
    pairs = next(line for line in res.stdout.splitlines() if line.strip().startswith("hoof "))
    assert "logreg" in pairs and "svm" in pairs and "ststnet" not in pairs


def test_a_plugin_shadowing_a_built_in_is_an_error(tmp_path, monkeypatch):
    (tmp_path / "shadow_plugin.py").write_text(
        "from representations import REPRESENTATIONS\nfrom representations.base import Representation\n"
        "@REPRESENTATIONS.register('tvl1')\nclass Mine(Representation):\n    kind = 'vector'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match="shadow_plugin.*'tvl1' is a built-in"):
        load_plugins(["shadow_plugin"])


def test_a_plugin_that_cannot_be_imported_is_one_line(tmp_path):
    res = _cli(["list", "--plugin", "no_such_plugin_module"], cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "no_such_plugin_module" in res.stderr


def test_installed_entry_points_are_loaded(tmp_path, monkeypatch):
    (tmp_path / "ep_plugin.py").write_text("__version__ = '9'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = metadata.EntryPoint(name="mine", value="ep_plugin", group=ENTRY_POINT_GROUP)
    monkeypatch.setattr(metadata, "entry_points", lambda group: [ep] if group == ENTRY_POINT_GROUP else [])
    [record] = load_plugins()
    assert record["module"] == "ep_plugin" and record["source"] == "entry point mine"


def test_yaml_plugins_key_reaches_the_config(tmp_path):
    from benchmark.config import resolve

    spec = tmp_path / "run.yaml"
    spec.write_text(f"plugins: [{EXAMPLE}]\n")
    cfg = resolve({"rep": "hoof", "model": "logreg", "protocol": "cde", "data": "synthetic"}, spec)
    assert cfg.plugins == (str(EXAMPLE),)
    plain = resolve({"rep": "hoof", "model": "logreg", "protocol": "cde", "data": "synthetic"})
    assert cfg.run_id() != plain.run_id()  # user code is part of what a run is

"""Ctrl-C on a `--workers N` run: queued folds are cancelled, finished ones kept, one line says how
to resume (before: the pool trained every queued fold, threw the results away and ended in a
traceback)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.test_runner import write_flow_root


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals as on Linux")
def test_ctrl_c_stops_a_worker_run_at_once_and_it_resumes(tmp_path):
    root = write_flow_root(tmp_path / "data", n_sub=6)
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "benchmark", "run", "--rep", "precomputed", "--model", "ststnet", "--protocol",
           "cde", "--data-root", str(root), "--epochs", "150", "--workers", "2", "--out", str(out), "--quiet",
           "--n-boot", "20"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # A shell starts background jobs with SIGINT ignored, and an ignored signal stays ignored in
    # children (Python then installs no KeyboardInterrupt handler): give the run a terminal's Ctrl-C.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    deadline = time.time() + 600
    while not list(out.glob("*/folds/seed0/*.json")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    done_before = len(list(out.glob("*/folds/seed0/*.json")))
    assert 0 < done_before < 18 and proc.poll() is None, "the run finished before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
    t0 = time.time()
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, err
    assert time.time() - t0 < 60, "the queued folds were trained before exiting"
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "resumes" in lines[0] and "Traceback" not in err, err
    kept = len(list(out.glob("*/folds/seed0/*.json")))
    assert done_before <= kept < 18  # finished folds kept, the queued ones never ran
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr
    assert len(list(out.glob("*/folds/seed0/*.json"))) >= 18

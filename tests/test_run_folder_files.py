"""Run-folder files: readable by the group as the umask says, written atomically, one run per folder."""
from __future__ import annotations

import os
import stat

import pytest

from benchmark import rundir


def test_result_files_take_the_umask_mode_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        rundir.write_atomic(tmp_path / "metrics.json", "{}")
        rundir.write_atomic(tmp_path / "confusion.png", b"\x89PNG")
    finally:
        os.umask(old)
    for name in ("metrics.json", "confusion.png"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name


def test_a_second_process_on_the_same_run_folder_is_refused(tmp_path):
    import multiprocessing as mp

    with rundir.run_lock(tmp_path / "run"):
        ctx = mp.get_context("spawn")
        with ctx.Pool(1) as pool:
            message = pool.apply(_try_lock, (str(tmp_path / "run"),))
    assert "in use by pid" in message and "another --out" in message
    with rundir.run_lock(tmp_path / "run"):  # released: the folder can be run again
        pass


def _try_lock(path: str) -> str:
    try:
        with rundir.run_lock(path):
            return "acquired"
    except RuntimeError as err:
        return str(err)


def test_an_interrupted_confusion_plot_leaves_the_old_file(tmp_path, monkeypatch):
    import matplotlib.figure

    (tmp_path / "confusion.png").write_bytes(b"old")

    def broken(self, fname, **kw):
        fname.write(b"half a png")
        raise KeyboardInterrupt

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", broken)

    class Result:
        classes, rep, model, protocol, seeds = ("a", "b"), "r", "m", "p", (0,)

    with pytest.raises(KeyboardInterrupt):
        rundir._plot_confusion(tmp_path, [[1, 0], [0, 1]], Result())
    assert (tmp_path / "confusion.png").read_bytes() == b"old"

"""An oracle run's ``fixed`` twin, written from the same training.

Oracle selection trains exactly what ``fixed`` trains (the per-epoch test scoring runs in
eval mode under no_grad and draws no random numbers; see ``models.base.EpochChoice``) and
records each fold's last-epoch test predictions, which are the fixed run's. They are written
as the fixed configuration's own run folder (``derived_from`` in its config.json), so every
oracle row comes with its honest counterpart at no extra training. Folds that a direct fixed
run already wrote are kept, not replaced (the note counts how many of their predictions
agree); an older oracle run without last-epoch predictions is compared with a finished direct
fixed run.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Callable, Sequence

from benchmark import rundir, scoring
from benchmark.results import FixedCompanion, FoldRecord

if TYPE_CHECKING:
    from benchmark.plan import Plan

log = logging.getLogger("benchmark")


def fixed_companion(p: Plan, records: Sequence[FoldRecord], header: Callable[[Plan], dict]) -> FixedCompanion | None:
    """The twin of oracle run ``p`` (written unless it is finished) and the paired
    oracle-minus-fixed difference; None for other selections or when nothing can be compared.
    ``header`` makes a planned run's config.json."""
    if p.cfg.selection != "oracle" or not records:
        return None
    q = replace(p, cfg=replace(p.cfg, selection="fixed"))
    out, tag = q.folder, f"last epoch of oracle run {p.cfg.run_id()}"
    on_disk = [rundir.load_fold(out, r.seed, r.fold, q.sel.samples, q.sel.y) for r in records]
    direct = [d if d is not None and tag not in d.training else None for d in on_disk]
    finished = all(d is not None for d in on_disk) and (out / "metrics.json").exists()
    note = FixedCompanion(q.cfg.run_id(), derived_folds=0, direct_folds=sum(d is not None for d in direct))
    if any(r.last_epoch_pred is None for r in records):  # made before last-epoch predictions were kept
        return replace(note, oracle_minus_fixed=_difference(p, records, on_disk)) if finished else None
    derived = [_last_epoch(r, q, tag) for r in records]
    agree = sum(sum(a == b for a, b in zip(d.pred, e.pred)) for d, e in zip(direct, derived) if d)
    note = replace(note, derived_folds=len(records) - note.direct_folds,
                   direct_predictions_agreeing=f"{agree}/{sum(len(d.pred) for d in direct if d)}")
    fixed = [old or rec for rec, old in zip(derived, direct)]  # a direct run's folds win
    if not finished:
        try:
            _write(p, q, header, [rec for rec, old in zip(derived, on_disk) if old is None], fixed)
        except RuntimeError as err:  # e.g. a run on other data in that folder: keep the oracle run
            log.warning("fixed companion not written: %s", err)
            return replace(note, error=str(err))
    return replace(note, oracle_minus_fixed=_difference(p, records, fixed))


def _last_epoch(r: FoldRecord, q: Plan, tag: str) -> FoldRecord:
    return replace(r, proba=r.last_epoch_proba, pred=r.last_epoch_pred, best_epoch=q.model.get_params().get("epochs"),
                   training=f"{r.training}; {tag}", last_epoch_proba=None, last_epoch_pred=None)


def _write(p: Plan, q: Plan, header: Callable[[Plan], dict], new: list[FoldRecord], fixed: list[FoldRecord]) -> None:
    """The twin's run folder: config.json (with the commit and start of the oracle run's training),
    the derived fold files it lacks, and its scored files."""
    trained = rundir.read_header(p.folder) or {}
    rundir.prepare(q.folder, {**header(q), "derived_from": p.cfg.run_id(),
                              "training": {"path": "derived", "reason": f"last epoch of oracle run {p.cfg.run_id()}"},
                              **{k: trained[k] for k in ("git_commit", "started") if k in trained}})
    for rec in new:
        rundir.save_fold(q.folder, rec)
    result = scoring.run_result(q.cfg, q.sel.classes, q.protocol.bootstrap_unit, q.model.get_params().get("epochs"),
                                fixed, wall_s=0.0, derived_from=p.cfg.run_id())
    rundir.write_run(q.folder, result, fixed)


def _difference(p: Plan, oracle: Sequence[FoldRecord], fixed: Sequence[FoldRecord]):
    return scoring.oracle_minus_fixed(oracle, fixed, p.cfg.seeds, p.protocol.bootstrap_unit, p.cfg.n_boot)

"""What a run does with samples that lack the frames its representation needs, decided once
at planning time (before any feature is computed) and recorded in the run folder.

``on_missing`` (a representation parameter):

* ``error`` (default): a one-line error naming the samples and the ways out;
* ``drop``: the samples are left out of the evaluation, listed in ``config.json`` (``inputs``);
* ``blank``: they get the representation's blank input; refused when more than
  ``MAX_BLANK_SHARE`` of the samples would be blank, since a mostly-blank run scores chance
  and looks like a result.

A sibling database that could not be read (a CDE composite whose ``casme2/`` sheet is missing
or malformed) is fatal when the representation needs frames: its samples would otherwise all
look "without frames", and the sheet error is the real cause.
"""
from __future__ import annotations

import numpy as np

from benchmark.datasets import DatasetError

MAX_BLANK_SHARE = 0.05
POLICIES = ("error", "drop", "blank")


def _rep(cfg, params: dict):
    from representations import REPRESENTATIONS

    return REPRESENTATIONS.get(cfg.rep)(**params)


def _on_missing(rep) -> str | None:
    """The representation's ``on_missing`` setting (None: it has no such parameter)."""
    params = rep.get_params()
    if "on_missing" not in params:
        return None
    if params["on_missing"] not in POLICIES:
        raise ValueError(f"--rep-param on_missing must be one of {', '.join(POLICIES)}, not {params['on_missing']!r}")
    return params["on_missing"]


def _head(keys: list[str], n: int = 5) -> str:
    return ", ".join(keys[:n]) + (f" and {len(keys) - n} more" if len(keys) > n else "")


def _unreadable_siblings(report, sel) -> list[str]:
    """``<folder>: <error>`` of sibling databases the selected samples come from and that
    could not be read."""
    dbs = {s.dataset for s in sel.samples if not s.frames}  # frames: what a sibling's reader gives
    return [f"{d.sample}: {d.detail}" for d in report.defects
            if d.kind == "sibling_unreadable" and d.sample.rstrip("/").rsplit("/", 1)[-1] in dbs]


def apply_frames_policy(cfg, report, sel) -> tuple[object, dict]:
    """``(selection, rep_params)`` after the ``on_missing`` policy: errors first, samples
    dropped under ``drop`` (the representation then gets ``on_missing="error"``: it never
    sees a frameless sample)."""
    params = dict(cfg.rep_params)
    rep = _rep(cfg, params)
    policy = _on_missing(rep)
    if not rep.needs_frames():
        return sel, params
    broken = _unreadable_siblings(report, sel)
    if broken:
        raise DatasetError(f"{cfg.rep} needs frames, but a database folder cannot be read: {broken[0]}")
    missing = [s.key for s in sel.samples if not rep.has_inputs(s)]
    if not missing:
        return sel, params
    n, total = len(missing), len(sel.samples)
    if policy == "drop":
        from protocols.base import LabelledSet

        keep = np.array([rep.has_inputs(s) for s in sel.samples])
        if not keep.any():
            raise DatasetError(f"{cfg.rep}: none of the {total} samples has frames; nothing to evaluate")
        sel = LabelledSet([s for s, k in zip(sel.samples, keep) if k], sel.y[keep], sel.classes, sel.excluded)
        return sel, {**params, "on_missing": "error"}
    if policy == "blank" and n <= MAX_BLANK_SHARE * total:
        return sel, params
    if policy == "blank":
        raise DatasetError(
            f"{cfg.rep}: {n} of {total} samples ({100 * n / total:.0f} %) have no frames; on_missing=blank "
            f"is allowed for at most {100 * MAX_BLANK_SHARE:.0f} % (a mostly blank run scores chance): pass "
            "--rep-param on_missing=drop to leave them out, or supply their frames")
    hint = ""
    if getattr(report, "name", None) == "megc2019" and not cfg.dataset:
        hint = "on the CDE only CASME II has public frames: use --dataset casme2; or "
    raise DatasetError(
        f"{cfg.rep}: {n} of {total} samples have no frames ({_head(missing)}); {hint}pass --rep-param "
        "on_missing=drop to leave them out (recorded), or on_missing=blank to give them blank inputs "
        f"(at most {100 * MAX_BLANK_SHARE:.0f} % of the samples)")


def inputs_record(p) -> dict:
    """What ``config.json`` records under ``inputs``: the policy, the blank and the dropped samples."""
    rep = p.rep
    policy = p.cfg.rep_params.get("on_missing", _on_missing(rep))
    if not rep.needs_frames():
        return {"on_missing": policy, "needs_frames": False, "blank": 0, "dropped": 0}
    selected = {s.key for s in p.sel.samples}
    dropped = sorted(s.key for s in p.protocol.select(p.report).samples if s.key not in selected)
    blank = sorted(s.key for s in p.sel.samples if not rep.has_inputs(s))
    return {"on_missing": policy, "needs_frames": True, "blank": len(blank), "blank_samples": blank,
            "dropped": len(dropped), "dropped_samples": dropped}


def describe(inputs: dict | None) -> str | None:
    """One line for the end of a run (None when every sample had its inputs)."""
    if not inputs or not (inputs.get("blank") or inputs.get("dropped")):
        return None
    parts = []
    if inputs.get("blank"):
        parts.append(f"{inputs['blank']} sample(s) without frames got blank inputs (on_missing=blank)")
    if inputs.get("dropped"):
        parts.append(f"{inputs['dropped']} sample(s) without frames left out (on_missing=drop)")
    return "; ".join(parts)


"""``data check``: what a dataset reader finds in a folder, as a summary.

``check(name, root)`` reads the dataset with its registered reader and returns
a JSON-serialisable dict; ``format_text(summary)`` renders it for people.
Reader errors (wrong root, missing or malformed sheet) propagate as
:class:`~benchmark.datasets.DatasetError` with their message.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from benchmark.datasets import read_dataset
from benchmark.core.samples import DatasetReport


def _counts(values) -> dict[str, int]:
    """Counts sorted by decreasing count, then name."""
    c = Counter(values)
    return dict(sorted(c.items(), key=lambda kv: (-kv[1], str(kv[0]))))


def summarize(report: DatasetReport) -> dict:
    """Summary of an already-read :class:`DatasetReport`."""
    samples = report.samples
    per_db: dict[str, dict] = {}
    for db in sorted({s.dataset for s in samples}):
        mine = [s for s in samples if s.dataset == db]
        per_db[db] = {
            "samples": len(mine),
            "subjects": len({s.subject for s in mine}),
            "classes": _counts(s.emotion for s in mine),
        }
    extras = Counter(k for s in samples for k in s.extras)
    return {
        "dataset": report.name,
        "root": str(report.root),
        "files": [str(p) for p in report.files],
        "n_samples": len(samples),
        "n_subjects": len(report.subjects),
        "emotions": _counts(s.emotion for s in samples),
        "per_database": per_db,
        "frames": {
            "with_frames": sum(1 for s in samples if s.frames),
            "without_frames": sum(1 for s in samples if not s.frames),
        },
        "extras": dict(sorted(extras.items())),
        "fps": sorted({s.fps for s in samples if s.fps is not None}),
        "defects": [
            {"sample": d.sample, "kind": d.kind, "detail": d.detail, "action": d.action} for d in report.defects
        ],
        "defect_counts": _counts(d.kind for d in report.defects),
        "missing_frames": _missing_per_subject(report),
    }


def _missing_per_subject(report: DatasetReport) -> dict:
    """Subjects whose clips have no frame folder: ``{"none": [subjects without any],
    "some": {subject: "k of n"}}`` (from the ``missing_frames`` defects)."""
    missing = Counter(d.sample.rsplit("/", 1)[0] for d in report.defects if d.kind == "missing_frames")
    if not missing:
        return {"none": [], "some": {}}
    with_frames = Counter(s.subject for s in report.samples if s.frames)
    none = sorted(sub for sub in missing if not with_frames[sub])
    some = {sub: f"{n} of {n + with_frames[sub]}" for sub, n in sorted(missing.items()) if with_frames[sub]}
    return {"none": none, "some": some}


def _missing_lines(per_subject: dict, mine: list[dict]) -> list[str]:
    none, some = per_subject["none"], per_subject["some"]
    out = []
    if none:
        out.append(f"    {len(none)} subject(s) have no frame folders: {_head(none, 12)}")
    if some:
        out.append(f"    {len(some)} subject(s) lack some: " + _head([f"{k} {v}" for k, v in some.items()], 12))
    out.append(f"      -> {mine[0]['action']} ({len(mine)} samples; --json lists each)")
    return out


def _head(items: list[str], n: int) -> str:
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


IMAGE_SCOPES = ("key", "all", "none")


def image_files(report: DatasetReport, scope: str = "key") -> list[tuple[str, str, Path]]:
    """``(sample, role, path)`` of the files a run would read: ``key`` the onset/apex/offset
    frames (nearest available, as ``Sample.frame_path``) and the extras (flow images, apex
    crops); ``all`` every frame too."""
    if scope not in IMAGE_SCOPES:
        raise ValueError(f"--images must be one of {', '.join(IMAGE_SCOPES)}, not {scope!r}")
    out = []
    for s in report.samples if scope != "none" else ():
        if s.frames and scope == "all":
            out += [(s.key, f"frame {n}", p) for n, p in sorted(s.frames.items())]
        elif s.frames:
            points = {n: s.frame_path(n)[0] for n in (s.onset, s.apex, s.offset) if n is not None}
            out += [(s.key, f"frame {n}", p) for n, p in points.items()]
        out += [(s.key, k, Path(p)) for k, p in sorted(s.extras.items())]
    return out


def check_images(report: DatasetReport, scope: str = "key") -> dict:
    """Open every file of :func:`image_files`: empty, truncated or undecodable images, flow
    images without three channels or of another size than the rest."""
    import cv2

    from representations.base import RepresentationError, read_image, stored_channels

    problems, flow_sizes = [], {}
    files = image_files(report, scope)
    for key, role, path in files:
        try:
            img = read_image(path)
            if role == "flow":
                if stored_channels(path) < 3:
                    raise RepresentationError(f"{path}: flow image has {stored_channels(path)} channel(s), expected 3")
                flow_sizes.setdefault(img.shape[:2], []).append((key, path))
        except (RepresentationError, OSError, cv2.error) as exc:
            problems.append({"sample": key, "file": str(path), "problem": str(exc)})
    if len(flow_sizes) > 1:  # the minority sizes are the odd ones
        common = max(flow_sizes, key=lambda k: len(flow_sizes[k]))
        for size, items in flow_sizes.items():
            if size != common:
                problems += [{"sample": k, "file": str(p), "problem": f"{p}: flow image is {size[1]}x{size[0]}, "
                              f"the others {common[1]}x{common[0]}"} for k, p in items]
    return {"scope": scope, "opened": len(files), "problems": problems}


def check(name: str, root: str | Path, images: str = "key", **options) -> dict:
    """Read dataset ``name`` from ``root`` and summarise it (see :func:`summarize`); with
    ``images`` (``key`` | ``all``) every file a run would read is opened (:func:`check_images`)."""
    report = read_dataset(name, Path(root), **options)
    summary = summarize(report)
    if images != "none":
        summary["images"] = check_images(report, images)
    return summary


def format_text(summary: dict, max_defects: int | None = None) -> str:
    """Human-readable rendering of :func:`check`'s summary.

    ``max_defects`` limits the listed defects per kind (None: all).
    """
    s = summary
    lines = [
        f"dataset   {s['dataset']}",
        f"root      {s['root']}",
    ]
    for f in s.get("files", []):
        lines.append(f"file      {f}")
    lines.append(f"samples   {s['n_samples']}   subjects {s['n_subjects']}")
    if s.get("fps"):
        lines.append("fps       " + ", ".join(f"{x:g}" for x in s["fps"]))
    fr = s.get("frames", {})
    if fr:
        lines.append(f"frames    {fr.get('with_frames', 0)} samples with frames, "
                     f"{fr.get('without_frames', 0)} without")
    if s.get("extras"):
        lines.append("extras    " + ", ".join(f"{k} {v}" for k, v in s["extras"].items()))
    lines.append("emotions  " + ", ".join(f"{k} {v}" for k, v in s["emotions"].items()))
    per_db = s.get("per_database", {})
    if len(per_db) > 1:
        lines.append("per database:")
        width = max(len(k) for k in per_db)
        for db, d in per_db.items():
            classes = "/".join(str(v) for v in d["classes"].values())
            names = "/".join(d["classes"])
            lines.append(f"  {db:<{width}}  {d['samples']:>4} samples  {d['subjects']:>3} subjects  "
                         f"{names} {classes}")
    img = s.get("images")
    if img:
        lines.append(f"images    {img['opened']} files opened ({img['scope']}), {len(img['problems'])} unreadable")
        lines += [f"  {p['problem']}" for p in img["problems"]]
    defects = s.get("defects", [])
    if not defects:
        lines.append("defects   none")
        return "\n".join(lines)
    lines.append(f"defects   {len(defects)}: " + ", ".join(f"{k} {v}" for k, v in s["defect_counts"].items()))
    for kind in s["defect_counts"]:
        mine = [d for d in defects if d["kind"] == kind]
        lines.append(f"  [{kind}]")
        per_subject = s.get("missing_frames") or {}
        if kind == "missing_frames" and per_subject.get("none") is not None:  # per subject, not per clip
            lines += _missing_lines(per_subject, mine)
            continue
        shown = mine if max_defects is None else mine[:max_defects]
        for d in shown:
            lines.append(f"    {d['sample']}: {d['detail']}")
            lines.append(f"      -> {d['action']}")
        if len(shown) < len(mine):
            lines.append(f"    ... {len(mine) - len(shown)} more")
    return "\n".join(lines)


def run_notes(run: str | Path) -> list[str]:
    """What the end of ``benchmark run`` says about a run's data beside its scores: blank or
    dropped inputs, a list that differs from the official composite, and the defect counts
    (all from the run folder's ``config.json``)."""
    import json

    from benchmark.inputs import describe

    header = json.loads((Path(run) / "config.json").read_text())
    notes = [n for n in [describe(header.get("inputs"))] if n]
    defects = header.get("dataset_defects") or []
    notes += [f"not the official list: {d['detail']}" for d in defects if d.get("kind") == "differs_from_official"]
    if defects:
        counts = _counts(d.get("kind") for d in defects)
        notes.append(f"{len(defects)} dataset defect(s) with their fallbacks in config.json: "
                     + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return notes

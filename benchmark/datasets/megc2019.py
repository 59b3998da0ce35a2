"""MEGC2019 composite (CDE): the official 442-sample list defines the samples.

Layout (``<data-root>/megc2019``):
  combined_3class_gt.csv                       official list, no header
  combined_3_class2_for_optical_flow.csv       optional, gives apex-crop names
  STSNet_whole_norm_u_v_os/<sub>_<clip> .png   optional, 28x28 flow images
  three_norm_u_v_os/<fold>/u_test/<label>/...  optional, the same images in the
                                               per-fold HTNet layout (used when
                                               the flat folder is absent)
  combined_datasets_whole/<imagename>.jpg      optional, apex crops
Frames are joined from the sibling database folders (``../casme2`` ...) when
those readers find the same clip; otherwise samples carry only the extras.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

from benchmark.core.samples import DatasetReport, Defect, Sample

GT_FILE = "combined_3class_gt.csv"
FLOW_LIST = "combined_3_class2_for_optical_flow.csv"
FLOW_DIR = "STSNet_whole_norm_u_v_os"
FLOW_DIR_PER_FOLD = "three_norm_u_v_os"
APEX_DIR = "combined_datasets_whole"
CLASSES = ("negative", "positive", "surprise")
DATABASES = ("casme2", "samm", "smic")
# The official composite (MEGC2019 CDE papers): samples per class and subjects, per database.
OFFICIAL = {"smic": ((70, 51, 43), 16), "casme2": ((88, 32, 25), 24), "samm": ((92, 26, 15), 28)}
NOT_OFFICIAL = "differs_from_official"


def canonical_subject(database: str, subject: str) -> str:
    """Subject id as written in flow file names (SAMM zero-padded to 3 digits,
    SMIC ``s1`` -> ``s01``)."""
    subject = subject.strip()
    if database == "samm" and subject.isdigit():
        return subject.zfill(3)
    if database == "smic" and (m := re.fullmatch(r"(?i)s?(\d+)", subject)):
        return f"s{int(m.group(1)):02d}"
    return subject


def canonical_clip(database: str, clip: str) -> str:
    """SMIC ``s1_ne_01`` -> ``s01_ne_01`` (as in the official list); others unchanged."""
    clip = clip.strip()
    if database == "smic" and (m := re.fullmatch(r"(?i)s(\d+)_(.+)", clip)):
        return f"s{int(m.group(1)):02d}_{m.group(2)}"
    return clip


def read_gt(path: Path) -> list[tuple[str, str, str, int, int]]:
    """Rows ``(database, subject, clip, label, line)`` of the official list."""
    from benchmark.datasets import DatasetError

    if not path.is_file():
        raise DatasetError(f"megc2019: ground-truth list {path} not found")
    rows = []
    with path.open(newline="", encoding="utf-8-sig") as fh:
        for line, row in enumerate(csv.reader(fh), start=1):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != 4:
                raise DatasetError(
                    f"{path}: line {line} has {len(row)} columns, expected 4 "
                    "(dataset,subject,filename,label)"
                )
            db, sub, clip, label = (c.strip() for c in row)
            if db.lower() not in DATABASES:
                raise DatasetError(f"{path}: line {line}, column 1: unknown database {db!r}")
            if label not in {"0", "1", "2"}:
                raise DatasetError(f"{path}: line {line}, column 4: label {label!r} is not 0/1/2")
            db = db.lower()
            rows.append((db, canonical_subject(db, sub), canonical_clip(db, clip), int(label), line))
    return rows


def official_differences(rows, root: Path) -> list[str]:
    """How the list's counts differ from the official composite's (442 samples; 164/145/133
    per database; 68 subjects; per-class counts); empty when they agree. The embedded
    synthetic composite is checked against the count its generator recorded instead."""
    import json

    from benchmark.datasets.synthetic import MARKER

    marker = root.parent / MARKER
    if marker.is_file():
        try:
            want = json.loads(marker.read_text())["counts"]["megc2019"]
        except (ValueError, KeyError, TypeError):
            return [f"unreadable synthetic-data marker {marker}"]
        return [] if len(rows) == want else [f"{len(rows)} samples, the synthetic composite has {want}"]
    out = []
    total = sum(sum(c) for c, _ in OFFICIAL.values())
    if len(rows) != total:
        out.append(f"{len(rows)} samples (official {total})")
    for db, (classes, n_subjects) in OFFICIAL.items():
        mine = [r for r in rows if r[0] == db]
        got = tuple(sum(1 for r in mine if r[3] == k) for k in range(len(CLASSES)))
        subjects = len({r[1] for r in mine})
        if got != classes:
            out.append(f"{db} {len(mine)} samples {'/'.join(map(str, got))} "
                       f"(official {sum(classes)}: {'/'.join(map(str, classes))})")
        if subjects != n_subjects:
            out.append(f"{db} {subjects} subjects (official {n_subjects})")
    return out


def _index_dir(folder: Path) -> dict[str, Path]:
    """File stem (spaces stripped) -> path, tolerant of the ``' .png'`` quirk."""
    if not folder.is_dir():
        return {}
    return {p.stem.strip(): p for p in folder.iterdir() if p.is_file()}


def _apex_names(root: Path) -> dict[tuple[str, str, str], str]:
    path = root / FLOW_LIST
    if not path.is_file():
        return {}
    out = {}
    with path.open(newline="", encoding="utf-8-sig") as fh:
        for row in csv.DictReader(fh):
            db = row["dataset"].strip().lower()
            key = (db, canonical_subject(db, row["sub"]), canonical_clip(db, row["filename_o"]))
            out[key] = Path(row["imagename"].strip()).stem
    return out


def _apex_candidates(db: str, sub: str, clip: str) -> list[str]:
    """Apex-crop stems to try: ``s01_s1_ne_01`` is how the public SMIC crops are named."""
    out = [f"{sub}_{clip}"]
    if db == "smic" and (m := re.fullmatch(r"s(\d+)_(.+)", clip)):
        out.append(f"{sub}_s{int(m.group(1))}_{m.group(2)}")
    if db == "samm" and sub.isdigit():
        out.append(f"{int(sub)}_{clip}")
    return out


def _flows(root: Path, flow_dir: str | Path | None, defects: list[Defect]) -> dict[str, Path]:
    """``{"<db>/<sub>/<clip>": flow image}`` from the flat or the per-fold folder."""
    from benchmark.datasets.flowdirs import flow_index

    if flow_dir is not None:
        folder = Path(flow_dir)
        folder = folder if folder.is_absolute() or folder.is_dir() else root / folder
    else:
        folder = next((root / d for d in (FLOW_DIR, FLOW_DIR_PER_FOLD) if (root / d).is_dir()), None)
    if folder is None:
        return {}
    return flow_index(folder, defects)


def _sibling_samples(
    root: Path, defects: list[Defect], sibling_defects: dict[str, list[Defect]] | None = None,
    options: dict[str, dict] | None = None,
) -> dict[tuple[str, str], Sample]:
    """Clips with frames from sibling database folders, keyed (subject, clip):
    CASME II clip names repeat across subjects (sub12/EP09_02, sub25/EP09_02)."""
    from benchmark.datasets import DATASETS

    found: dict[tuple[str, str], Sample] = {}
    for db in DATABASES:
        folder = root.parent / db
        if not folder.is_dir():
            continue
        try:
            report = DATASETS.get(db)(folder, **(options or {}).get(db, {}))
        except Exception as exc:  # a broken sibling must not hide the composite
            defects.append(Defect(str(folder), "sibling_unreadable", str(exc), "frames not joined"))
            continue
        if sibling_defects is not None:
            for d in report.defects:
                sibling_defects.setdefault(d.sample, []).append(d)
        for s in report.samples:
            if s.frames:
                found[(s.subject, s.clip)] = s
    return found


def read(root: Path, join_frames: bool = True, flow_dir: str | Path | None = None,
         frames: str | None = None) -> DatasetReport:
    """Read the composite; flow images and apex crops become ``extras``.

    ``flow_dir``: flow folder (flat or per-fold layout) instead of the default
    ``STSNet_whole_norm_u_v_os`` / ``three_norm_u_v_os`` under ``root``.
    ``frames``: the CASME II sibling's frame source (``auto`` | ``cropped`` | ``raw``,
    see :mod:`benchmark.datasets.casme2`); None: that reader's default.
    """
    rows = read_gt(root / GT_FILE)
    defects: list[Defect] = []
    unique = list({r[:3]: r for r in reversed(rows)}.values())  # first row of each key
    differences = official_differences(unique, root)
    if differences:
        defects.append(Defect(str(root / GT_FILE), NOT_OFFICIAL, "; ".join(differences),
                              "samples used as listed: scores are not comparable with the official CDE"))
    flows, apexes, apex_names = _flows(root, flow_dir, defects), _index_dir(root / APEX_DIR), _apex_names(root)
    sibling_defects: dict[str, list[Defect]] = {}  # per-sample problems of joined clips
    if frames is not None:
        from benchmark.datasets.casme2 import FRAME_CHOICES

        if frames not in FRAME_CHOICES:  # else the sibling would only be reported unreadable
            raise ValueError(f"megc2019: frames must be one of {', '.join(FRAME_CHOICES)}, not {frames!r}")
    sibling_options = {"casme2": {"frames": frames}} if frames is not None else {}
    siblings = _sibling_samples(root, defects, sibling_defects, sibling_options) if join_frames else {}
    samples, seen = [], {}
    for db, sub, clip, label, line in rows:
        key = (db, sub, clip)
        if key in seen:
            first_line, first_label = seen[key]
            if first_label != label:  # no fallback can tell which label is right
                from benchmark.datasets import DatasetError

                raise DatasetError(f"{root / GT_FILE}: {db}/{sub}/{clip} is listed twice with different labels "
                                   f"(line {first_line}: {first_label}, line {line}: {label})")
            defects.append(Defect(f"{db}/{sub}/{clip}", "duplicate_key", f"line {line} repeats line {first_line}",
                                  "later row skipped (same label)"))
            continue
        seen[key] = (line, label)
        extras = {}
        flow = flows.get(f"{db}/{sub}/{clip}")
        if flow is not None:
            extras["flow"] = flow
        for apex_stem in ([apex_names[key]] if key in apex_names else []) + _apex_candidates(db, sub, clip):
            if apex_stem in apexes:
                extras["apex_image"] = apexes[apex_stem]
                break
        base = siblings.get((f"{db}/{sub}", clip))
        defects.extend(d for d in sibling_defects.get(f"{db}/{sub}/{clip}", ())
                       if base is not None or d.kind == "missing_frames")
        if flows and "flow" not in extras:
            defects.append(Defect(f"{db}/{sub}/{clip}", "missing_flow", f"no flow image {sub}_{clip}",
                                  "sample has no 'flow' extra"))
        if apexes and "apex_image" not in extras:
            defects.append(Defect(f"{db}/{sub}/{clip}", "missing_apex_image",
                                  f"no apex crop {apex_names.get(key, f'{sub}_{clip}')} in {APEX_DIR}",
                                  "sample has no 'apex_image' extra"))
        samples.append(
            Sample(
                dataset=db,
                subject=f"{db}/{sub}",
                clip=clip,
                emotion=CLASSES[label],
                onset=base.onset if base else None,
                apex=base.apex if base else None,
                offset=base.offset if base else None,
                frames=base.frames if base else {},
                extras=extras,
                fps=base.fps if base else None,
                grayscale=base.grayscale if base else db == "samm",
            )
        )
    files = [root / GT_FILE] + ([root / FLOW_LIST] if (root / FLOW_LIST).is_file() else [])
    return DatasetReport("megc2019", root, samples, defects, files)

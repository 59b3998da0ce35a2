"""Folders of precomputed flow images, keyed like ``Sample.key``.

Two layouts are read:

* flat: ``<folder>/<sub>_<clip>[ ].png`` (``STSNet_whole_norm_u_v_os``: note the
  space before ``.png`` in the public copy), or ``<folder>/<sub>/<file>``;
* per fold (HTNet / STSTNet LOSO copies):
  ``three_norm_u_v_os/<subject>/u_train|u_test/<label>/<sub>_<clip>.png``.
  Every sample lies in the ``u_test`` folder of its own subject's fold (and in
  the ``u_train`` folder of all other folds); the index takes the ``u_test``
  copy, and a ``u_train`` copy only for samples that are in no ``u_test``.

Keys are ``"<database>/<subject>/<clip>"`` with the database told by the
subject's spelling (``sub01`` CASME II, ``s01``/``s1`` SMIC, ``006``/``6`` SAMM,
``spNO.1`` CAS(ME)^3) and subjects/clips canonicalised as the readers do
(``s1_ne_01`` -> ``s01/s01_ne_01``), so ``flow_index(folder)[sample.key]`` is the
sample's flow image: usable directly as ``Sample.extras["flow"]``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from benchmark.datasets._frames import IMAGE_EXTS
from benchmark.core.samples import Defect

SPLITS = ("u_test", "u_train")


@dataclass(frozen=True)
class FlowFile:
    key: str  # "<database>/<subject>/<clip>"
    path: Path
    label: int | None = None  # class folder of the per-fold layout
    fold: str | None = None  # subject folder of the per-fold layout
    split: str | None = None  # "u_test" / "u_train"


def canonical_subject(text: str) -> tuple[str, str] | None:
    """``'sub1'`` -> ``('casme2', 'sub01')``; ``'s1'`` -> ``('smic', 's01')``;
    ``'6'`` -> ``('samm', '006')``; ``'spNO.1'`` -> ``('casme3', 'spNO.1')``."""
    text = text.strip()
    if m := re.fullmatch(r"(?i)sub(\d+)", text):
        return "casme2", f"sub{int(m.group(1)):02d}"
    if m := re.fullmatch(r"(?i)s(\d+)", text):
        return "smic", f"s{int(m.group(1)):02d}"
    if re.fullmatch(r"\d+", text):
        return "samm", text.zfill(3)
    if m := re.fullmatch(r"(?i)spNO\.(\d+)", text):
        return "casme3", f"spNO.{int(m.group(1))}"
    return None


def _canonical_clip(database: str, clip: str) -> str:
    if database == "smic" and (m := re.fullmatch(r"(?i)s(\d+)_(.+)", clip)):
        return f"s{int(m.group(1)):02d}_{m.group(2)}"
    if database == "samm" and (m := re.fullmatch(r"(\d+)_(.+)", clip)):
        return f"{m.group(1).zfill(3)}_{m.group(2)}"
    return clip


def _clip_looks_complete(database: str, subject: str, clip: str) -> bool:
    """SAMM and SMIC clip names start with their own subject (``006_1_2``, ``s01_ne_01``)."""
    if database in ("samm", "smic"):
        head, _, rest = clip.partition("_")
        return bool(rest) and canonical_subject(head) == (database, subject)
    return True


def parse_name(stem: str, subject: str | None = None) -> str | None:
    """Key of a flow file stem, e.g. ``'s01_s1_ne_01'`` -> ``'smic/s01/s01_ne_01'``.

    ``subject`` (the enclosing subject folder, if any) is used when the stem
    does not start with a subject.
    """
    stem = stem.strip()
    head, _, rest = stem.partition("_")
    parsed = canonical_subject(head) if rest else None
    if parsed is not None and _clip_looks_complete(*parsed, rest):
        if subject is None or canonical_subject(subject) in (None, parsed):
            db, sub = parsed
            return f"{db}/{sub}/{_canonical_clip(db, rest)}"
    if subject is not None and (parsed := canonical_subject(subject)) is not None:
        db, sub = parsed
        return f"{db}/{sub}/{_canonical_clip(db, stem)}"
    return None


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def is_per_fold(folder: Path) -> bool:
    return folder.is_dir() and any((d / s).is_dir() for d in folder.iterdir() if d.is_dir() for s in SPLITS)


def scan(folder: Path, defects: list[Defect] | None = None) -> list[FlowFile]:
    """Every flow image under ``folder`` (either layout), with its key."""
    from benchmark.datasets import DatasetError

    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"flow folder {folder} does not exist")
    defects = defects if defects is not None else []
    out: list[FlowFile] = []

    def add(path: Path, subject: str | None, **kw) -> None:
        key = parse_name(path.stem, subject)
        if key is None:
            defects.append(Defect(str(path), "unrecognised_flow_name",
                                  f"cannot tell subject and clip from {path.name!r}", "file ignored"))
            return
        out.append(FlowFile(key, path, **kw))

    if is_per_fold(folder):
        for fold in sorted(d for d in folder.iterdir() if d.is_dir()):
            for split in SPLITS:
                split_dir = fold / split
                if not split_dir.is_dir():
                    continue
                for label_dir in sorted(d for d in split_dir.iterdir() if d.is_dir()):
                    label = int(label_dir.name) if label_dir.name.isdigit() else None
                    for path in _images(label_dir):
                        add(path, None, label=label, fold=fold.name, split=split)
        return out
    for path in _images(folder):
        add(path, None)
    for sub in sorted(d for d in folder.iterdir() if d.is_dir()):
        for path in _images(sub):
            add(path, sub.name)
    return out


def flow_index(folder: Path, defects: list[Defect] | None = None) -> dict[str, Path]:
    """``{sample key: flow image}`` for a flat or per-fold flow folder.

    Problems go to ``defects``: a per-fold test file lying in another subject's
    fold (``flow_fold_mismatch``), one sample with two different test files or
    two different labels (``duplicate_flow``, the first in sorted order kept).
    """
    defects = defects if defects is not None else []
    files = scan(folder, defects)
    index: dict[str, Path] = {}
    labels: dict[str, int | None] = {}
    for f in files:
        if f.split == "u_train":
            continue
        if f.fold is not None:
            fold = canonical_subject(f.fold)
            if fold is not None and f.key.split("/")[:2] != list(fold):
                defects.append(Defect(f.key, "flow_fold_mismatch",
                                      f"{f.path} is in the test split of fold {f.fold!r}",
                                      "used anyway (the sample's own subject decides its fold)"))
        if f.key in index:
            if index[f.key] != f.path or labels[f.key] != f.label:
                defects.append(Defect(f.key, "duplicate_flow", f"{f.path} and {index[f.key]}",
                                      f"{index[f.key].name} kept"))
            continue
        index[f.key], labels[f.key] = f.path, f.label
    for f in files:  # samples only present in training splits
        if f.split == "u_train" and f.key not in index:
            index[f.key] = f.path
    return index


def flow_labels(folder: Path) -> dict[str, int]:
    """``{sample key: class folder number}`` of a per-fold layout (test splits first)."""
    out: dict[str, int] = {}
    for f in sorted(scan(folder), key=lambda f: f.split != "u_test"):
        if f.label is not None:
            out.setdefault(f.key, f.label)
    return out

"""The unit every reader produces and every protocol, representation and model consumes."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping


@dataclass(frozen=True)
class Sample:
    """One micro-expression clip.

    ``subject`` is globally unique (``"<dataset>/<subject>"``) so that a LOSO
    split over a composite never merges two databases' subjects. ``frames``
    maps the original frame number to its image path; it may be empty when
    only derived artefacts (``extras``: precomputed flow image, apex crop) exist.
    ``onset``/``apex``/``offset`` are original frame numbers (``apex`` may be
    None where the database has no apex annotation).
    """

    dataset: str
    subject: str
    clip: str
    emotion: str
    onset: int | None = None
    apex: int | None = None
    offset: int | None = None
    frames: Mapping[int, Path] = field(default_factory=dict, compare=False, repr=False)
    extras: Mapping[str, Path] = field(default_factory=dict, compare=False, repr=False)
    fps: float | None = None
    grayscale: bool = False

    @property
    def key(self) -> str:
        """Unique id across databases: ``dataset/subject-local/clip``."""
        return f"{self.subject}/{self.clip}"

    def frame_path(self, index: int) -> tuple[Path, int]:
        """Path of frame ``index`` or of the nearest available one.

        Returns ``(path, used_index)`` so callers can record the fallback.
        """
        if not self.frames:
            raise FileNotFoundError(f"{self.key}: no frames are available for this sample")
        if index in self.frames:
            return self.frames[index], index
        used = min(self.frames, key=lambda n: (abs(n - index), n))
        return self.frames[used], used


@dataclass(frozen=True)
class Defect:
    """A problem found while reading a dataset, with the fallback taken."""

    sample: str  # sample key, or file name for file-level problems
    kind: str  # e.g. "missing_apex_frame", "onset_after_apex", "unknown_emotion"
    detail: str
    action: str  # e.g. "nearest frame 123 used", "sample skipped"


@dataclass
class DatasetReport:
    """What a reader found: samples kept plus every defect and the action taken."""

    name: str
    root: Path
    samples: list[Sample]
    defects: list[Defect] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)  # sheets/lists read (for fingerprints)

    @property
    def subjects(self) -> list[str]:
        return sorted({s.subject for s in self.samples})

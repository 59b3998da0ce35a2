"""Base class of every representation.

``__init__`` only stores hyperparameters (scikit-learn convention, so
``sklearn.base.clone`` gives the runner a fresh copy per fold); ``fit`` learns
per-fold state on training samples only; ``transform`` maps samples to one
array whose first axis is the sample axis.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from sklearn.base import BaseEstimator

from benchmark.core.samples import Sample

class RepresentationError(ValueError):
    """A sample lacks what a representation needs."""


# Bytes every complete file of these formats ends with (JPEG end-of-image marker, PNG IEND
# chunk); decoders fill a cut file's missing part with grey and say so only on stderr.
_END_MARKERS = {b"\xff\xd8": (b"\xff\xd9",), b"\x89PNG": (b"IEND\xaeB`\x82",)}
_TAIL = 4096  # some writers pad after the end marker


def check_complete(path) -> None:
    """Raise :class:`RepresentationError` when ``path`` is empty or a JPEG/PNG cut short."""
    path = Path(path)
    size = path.stat().st_size if path.is_file() else -1
    if size <= 0:
        raise RepresentationError(f"cannot read image {path}: {'empty file' if size == 0 else 'no such file'}")
    with path.open("rb") as fh:
        head = fh.read(4)
        fh.seek(max(0, size - _TAIL))
        tail = fh.read()
    for magic, ends in _END_MARKERS.items():
        if head.startswith(magic) and not any(e in tail for e in ends):
            raise RepresentationError(f"image {path} is truncated (no end marker): re-copy it")


def read_image(path, grayscale: bool = False) -> np.ndarray:
    """The image as OpenCV decodes it (BGR, or one channel with ``grayscale``); an empty,
    truncated or undecodable file is a :class:`RepresentationError` naming it."""
    check_complete(path)
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if grayscale else cv2.IMREAD_COLOR)
    if img is None:
        raise RepresentationError(f"cannot read image {path}")
    return img


def stored_channels(path) -> int:
    """Channels the file itself stores (1 for a grayscale PNG that ``read_image`` would
    silently copy into three), from its header only."""
    from PIL import Image

    with Image.open(path) as im:
        return len(im.getbands())


# Input kinds a representation produces and a model declares it accepts.
# ``pairs``: (N, 2, C, S, S) tokenizer-ready (onset, apex) pairs, for a model that owns the tokenizer.
KINDS = ("flow_image", "image", "frames", "tokens", "vector", "pairs")


class Representation(BaseEstimator):
    """Stateless by default; learned representations override ``fit``."""

    kind: str = "image"
    learned: bool = False  # True: fit() learns from training samples (refit per fold)

    def prepare(self) -> "Representation":
        """Build what the representation needs before any fold (e.g. a default checkpoint);
        the runner calls it while planning a run, before the run folder is written."""
        return self

    def fit(self, samples: Sequence[Sample], y: np.ndarray | None = None) -> "Representation":
        return self

    def transform(self, samples: Sequence[Sample]) -> np.ndarray:
        raise NotImplementedError

    def recipe(self) -> dict:
        """Everything that determines the output; the cache key is built from it."""
        return {"rep": type(self).registry_name, **self.get_params()}

    def needs_frames(self) -> bool:
        """Whether ``transform`` reads the samples' frames (False: precomputed extras only).
        By default the representations that say what frameless samples get (``on_missing``)."""
        return "on_missing" in self.get_params()

    def has_inputs(self, sample: Sample) -> bool:
        """Whether ``sample`` has what ``transform`` reads (the runner's ``on_missing`` policy
        counts the samples without); by default its frames."""
        return bool(sample.frames)

    def training_subjects(self) -> set[str]:
        """Subjects whose data shaped this representation (contamination check)."""
        return set(getattr(self, "trained_on_", ()) or ())

    def crossfit_groups(self) -> int:
        """K > 0: pretrain K checkpoints before the folds (``crossfit_checkpoints``), each fold's
        clone getting ``set_params(checkpoint=...)`` of the one that excludes its test subject
        (``benchmark/crossfit.py``); 0 (default): nothing is cross-fitted. Bad settings raise here."""
        return 0

    def crossfit_checkpoints(self, samples: Sequence[Sample], groups: Sequence[int]) -> list[dict]:
        """K records ``{"path": checkpoint, ...}``: record k's model never saw a sample of group k."""
        raise NotImplementedError(f"{type(self).__name__} does not cross-fit")

def check_missing(samples: Sequence[Sample], on_missing: str, name: str, blank: str) -> None:
    """Samples without frames: an error naming them, unless ``on_missing="blank"`` (``blank``
    says what the representation then gives them). The runner applies the policy before
    (``benchmark/inputs.py``: ``drop`` leaves such samples out, ``blank`` is capped); this is
    the check for representations used on their own."""
    if on_missing not in ("error", "blank", "drop"):
        raise ValueError(f"on_missing must be 'error', 'drop' or 'blank', not {on_missing!r}")
    missing = [s.key for s in samples if not s.frames]
    if missing and on_missing != "blank":
        head = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise RepresentationError(
            f"{name}: {len(missing)} sample(s) have no frames ({head}); leave them out of the samples "
            f"(the runner does with --rep-param on_missing=drop), or pass on_missing=blank to {blank}")

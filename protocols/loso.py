"""Per-database leave-one-subject-out with a chosen class set."""
from __future__ import annotations

from protocols.labels import LABEL_SETS
from protocols import PROTOCOLS
from protocols.base import Protocol, ProtocolError

DEFAULT_LABEL_SET = {"casme2": "casme2-5", "casme3": "casme3-4", "samm": "megc3", "smic": "megc3"}


@PROTOCOLS.register()
class LOSO(Protocol):
    """LOSO on one database (default CASME II, 5 classes)."""

    bootstrap_unit = "subject"

    def __init__(self, dataset: str | None = None, label_set: str | None = None):
        super().__init__(dataset or "casme2")
        if self.dataset not in DEFAULT_LABEL_SET:
            raise ProtocolError(f"loso: unsupported dataset {self.dataset!r} (use {', '.join(DEFAULT_LABEL_SET)})")
        self.source = self.dataset
        self.label_set = label_set or DEFAULT_LABEL_SET[self.dataset]
        if self.label_set not in LABEL_SETS:
            raise ProtocolError(f"loso: unknown label set {self.label_set!r} (known: {', '.join(LABEL_SETS)})")

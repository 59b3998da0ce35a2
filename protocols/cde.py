"""CDE: the MEGC2019 composite (442 samples, 68 subjects, 3 classes), LOSO."""
from __future__ import annotations

from protocols import PROTOCOLS
from protocols.base import Protocol


@PROTOCOLS.register()
class CDE(Protocol):
    """Leave-one-subject-out over the official MEGC2019 list.

    Metrics are pooled over all folds (MEGC2019 definition) and also reported
    per database. ``dataset="casme2"`` runs the CASME II part alone.
    """

    source = "megc2019"
    label_set = "megc3"
    bootstrap_unit = "subject"
    databases = ("casme2", "samm", "smic")

import pytest

from benchmark.core.registry import Registry, RegistryError
from models import MODELS
from protocols import PROTOCOLS
from representations import REPRESENTATIONS


def test_duplicate_is_error_and_unknown_suggests():
    reg = Registry("thing")

    @reg.register("alpha")
    class Alpha:
        pass

    with pytest.raises(RegistryError, match="duplicate"):
        reg.register("alpha")(type("Other", (), {}))
    with pytest.raises(RegistryError, match="did you mean alpha"):
        reg.get("alpah")


def test_lazy_entries_resolve_to_registered_classes():
    for registry in (REPRESENTATIONS, MODELS, PROTOCOLS):
        for name in registry.names():
            assert registry.get(name).registry_name == name


def test_incompatible_pair_names_both_sides(monkeypatch):
    from benchmark.runner import IncompatibleError, check_compatible

    rep = REPRESENTATIONS.get("precomputed")
    monkeypatch.setattr(rep, "kind", "tokens")
    with pytest.raises(IncompatibleError, match="precomputed.*ststnet"):
        check_compatible("precomputed", "ststnet")

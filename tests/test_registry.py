"""The registries: a name is written once, and every inconsistency is an error."""
import subprocess
import sys
import textwrap

import pytest

from benchmark.core.registry import Registry, RegistryError
from models import MODELS
from protocols import PROTOCOLS
from representations import REPRESENTATIONS

REGISTRIES = (REPRESENTATIONS, MODELS, PROTOCOLS)


@pytest.fixture
def module(tmp_path, monkeypatch):
    """Write a throw-away module that registers into ``tests_reg`` (a registry it imports)."""
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry("thing")
    holder = tmp_path / "reg_holder.py"
    holder.write_text("REG = None\n")
    import importlib

    importlib.invalidate_caches()
    import reg_holder

    monkeypatch.setattr(reg_holder, "REG", reg)

    def write(name: str, source: str) -> str:
        (tmp_path / f"{name}.py").write_text("from reg_holder import REG\n" + textwrap.dedent(source))
        importlib.invalidate_caches()
        monkeypatch.delitem(sys.modules, name, raising=False)
        return name

    write.reg = reg
    return write


def test_duplicate_is_error_and_unknown_suggests():
    reg = Registry("thing")

    @reg.register("alpha")
    class Alpha:
        pass

    with pytest.raises(RegistryError, match="duplicate"):
        reg.register("alpha")(type("Other", (), {}))
    with pytest.raises(RegistryError, match="did you mean alpha"):
        reg.get("alpah")


def test_a_table_line_names_the_decorated_class(module):
    name = module("m_ok", """
        @REG.register()
        class Real:
            kind = "vector"
    """)
    module.reg.register_lazy("real", f"{name}:Real", kind="vector")
    assert module.reg.get("real").registry_name == "real"
    assert module.reg.declared("real") == {"kind": "vector"}


def test_a_bare_decorator_outside_the_table_is_an_error(module):
    module("m_bare", """
        @REG.register()
        class Stray:
            pass
    """)
    module.reg.register_lazy("stray", "m_other:Stray")
    with pytest.raises(RegistryError, match="not in the thing table"):
        __import__("m_bare")


def test_naming_a_table_entry_again_is_shadowing(module):
    module("m_twice", """
        @REG.register("real")
        class Real:
            pass
    """)
    module.reg.register_lazy("real", "m_twice:Real")
    with pytest.raises(RegistryError, match="built-in.*shadowing"):
        module.reg.get("real")


def test_a_declared_attribute_must_match_the_class(module):
    module("m_kind", """
        @REG.register()
        class Real:
            kind = "tokens"
    """)
    module.reg.register_lazy("real", "m_kind:Real", kind="vector")
    with pytest.raises(RegistryError, match="declares kind='vector' but m_kind:Real has 'tokens'"):
        module.reg.get("real")


def test_a_lazy_entry_resolving_to_another_class_is_an_error(module):
    """Before: get() assigned the looked-up name to whatever the target was, so a table line
    pointing at the wrong class passed and renamed that class."""
    module("m_alias", """
        @REG.register()
        class Real:
            pass
        Alias = Real
    """)
    module.reg.register_lazy("real", "m_alias:Real")
    module.reg.register_lazy("other", "m_alias:Alias")
    with pytest.raises(RegistryError, match="not decorated|not the object"):
        module.reg.get("other")
    assert module.reg.get("real").registry_name == "real"


def test_one_class_under_two_names_is_an_error():
    reg = Registry("thing")

    @reg.register("one")
    class A:
        pass

    with pytest.raises(RegistryError, match="already the thing 'one'"):
        reg.register("two")(A)


def test_every_built_in_declares_what_its_class_declares():
    for registry, attr in ((REPRESENTATIONS, "kind"), (MODELS, "accepts")):
        for entry in registry.lazy_entries():
            cls = registry.get(entry.name)
            declared, actual = entry.declared[attr], getattr(cls, attr)
            assert cls.registry_name == entry.name
            if attr == "accepts":
                declared, actual = sorted(declared), sorted(actual)
            assert declared == actual, entry


def test_list_imports_no_entry_and_no_torch():
    code = ("import sys, contextlib, io\nfrom benchmark.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out: main(['list'])\n"
            "heavy = sorted(m for m in ('torch', 'sklearn', 'cv2', 'timm', 'mediapipe') if m in sys.modules)\n"
            "print(heavy, 'tvl1 (flow_image)' in out.getvalue(), 'transformer' in out.getvalue())")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "[] True True", res.stdout + res.stderr


def test_incompatible_pair_names_both_sides(monkeypatch):
    from benchmark.runner import IncompatibleError, check_compatible

    rep = REPRESENTATIONS.get("precomputed")
    monkeypatch.setattr(rep, "kind", "tokens")
    with pytest.raises(IncompatibleError, match="precomputed.*ststnet"):
        check_compatible("precomputed", "ststnet")

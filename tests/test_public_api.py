"""The public API: re-exports match `__all__`, every name is documented."""

import importlib
import inspect

import pytest

import jaxfeat

PILLARS = ["linear_ssl", "ntk", "kan", "influence"]


@pytest.mark.parametrize("pillar", PILLARS)
def test_all_matches_reexports_and_docstrings(pillar):
    mod = importlib.import_module(f"jaxfeat.{pillar}")
    assert mod.__doc__ and "| name |" in mod.__doc__  # `help(jaxfeat.<pillar>)` index
    public = {
        n
        for n, v in vars(mod).items()
        if not n.startswith("_") and not inspect.ismodule(v)
    }
    assert public == set(mod.__all__)
    for name in mod.__all__:
        obj = getattr(mod, name)
        assert inspect.getdoc(obj), f"{pillar}.{name} has no docstring"
        assert f"`{name}`" in mod.__doc__, f"{name} missing from the {pillar} table"


def test_top_level():
    assert jaxfeat.__version__
    for pillar in PILLARS:
        assert hasattr(jaxfeat, pillar)
    assert inspect.getdoc(jaxfeat.sharded_vmap)


def test_library_does_not_import_matplotlib_or_flip_config():
    import pathlib

    root = pathlib.Path(jaxfeat.__file__).parent
    for f in root.rglob("*.py"):
        text = f.read_text()
        assert "import matplotlib" not in text, f
        assert "config.update" not in text, f

"""House rules that a linter does not check."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_files_are_small():
    for folder in ("jaxfeat", "experiments", "benchmarks", "tests"):
        for f in (ROOT / folder).rglob("*.py"):
            n = len(f.read_text().splitlines())
            assert n <= 800, f"{f.relative_to(ROOT)} has {n} lines: split by concept"


def test_runtime_dependencies_pin_nothing_above():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for dep in deps["dependencies"]:
        assert "<" not in dep and "==" not in dep, dep
    assert not any("torch" in d for d in deps["dependencies"])


def test_private_modules_and_no_relative_imports():
    for f in (ROOT / "jaxfeat").rglob("*.py"):
        if f.name == "__init__.py" or f.parent.name in ("jaxfeat", "_src"):
            continue
        assert f.name.startswith("_"), f"{f.relative_to(ROOT)}: code lives in _modules"
        assert "from ." not in f.read_text()


def test_src_imports_no_pillar():
    for f in (ROOT / "jaxfeat" / "_src").glob("*.py"):
        text = f.read_text()
        for pillar in ("linear_ssl", "ntk", "kan", "influence"):
            assert f"jaxfeat.{pillar}" not in text, f"{f.name} imports {pillar}"


def test_lapack_calls_go_through_the_vmap_safe_wrappers():
    # jaxlib 0.10's batched CPU LAPACK kernels can hang a sharded sweep
    # (jaxfeat/_src/linalg.py): the package calls them through those wrappers.
    banned = (
        "jnp.linalg.eigh(",
        "jnp.linalg.svd(",
        "jnp.linalg.lstsq(",
        "jnp.linalg.solve(",
        "jnp.linalg.cholesky(",
        "jnp.linalg.qr(",
        "jnp.linalg.inv(",
        "jnp.linalg.det(",
        "jnp.linalg.slogdet(",
        "jnp.linalg.pinv(",
        "solve_triangular(",
    )
    for f in (ROOT / "jaxfeat").rglob("*.py"):
        if f.relative_to(ROOT).as_posix() == "jaxfeat/_src/linalg.py":
            continue
        text = f.read_text()
        for call in banned:
            assert call not in text, (
                f"{f.relative_to(ROOT)} calls {call}: use _src.linalg"
            )

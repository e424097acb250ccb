"""Every notebook runs end to end (smoke sizes) in a fresh interpreter."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py")) + sorted(
    (ROOT / "notebooks").glob("*.ipynb")
)


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, tmp_path):
    env = dict(
        os.environ,
        MPLBACKEND="Agg",
        JAXFEAT_SMOKE="1",
        JAX_PLATFORMS="cpu",
        JAXFEAT_NOTEBOOK_OUT=str(tmp_path),
        PYTHONPATH=str(ROOT),
    )
    if path.suffix == ".py":
        proc = subprocess.run(
            [sys.executable, str(path)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    else:
        import nbformat
        from nbclient import NotebookClient

        nb = nbformat.read(path, as_version=4)
        NotebookClient(nb, timeout=600, kernel_name="python3").execute()
    assert list(tmp_path.glob("*.png")), "the notebook should save its figure"


def test_committed_ipynb_have_no_outputs():
    import json

    for path in (ROOT / "notebooks").glob("*.ipynb"):
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            assert not cell.get("outputs"), f"{path.name} has committed outputs"

"""The `jaxfeat` command: `jaxfeat list`, `jaxfeat reproduce NAME... --scale ...`.

The experiment scripts live in the repository's `experiments/` package, outside the
wheel. An editable install (`pip install -e .`) puts the repository on `sys.path`;
otherwise the current directory is tried.
"""

import sys
from pathlib import Path


def _import_runner():
    try:
        import experiments._runner as runner
    except ImportError:
        sys.path.insert(0, str(Path.cwd()))
        try:
            import experiments._runner as runner
        except ImportError:
            sys.exit(
                "jaxfeat: cannot find the experiments/ package; run from the "
                "repository root or install with `pip install -e .`"
            )
    return runner


def main(argv: list[str] | None = None) -> int:
    """Runs the `jaxfeat` command line."""
    return _import_runner().main(argv)


if __name__ == "__main__":
    raise SystemExit(main())

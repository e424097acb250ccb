"""Reproduction scripts: one finding per script, registered with `jaxfeat reproduce`.

Each `experiments/<pillar>/<name>.py` defines `EXPERIMENT` (an `Experiment`) and
`main(argv) -> dict`, and runs as `python -m experiments.<pillar>.<name>`.
"""

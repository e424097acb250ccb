"""Claim IDs agree across theory notes, theory tests and experiments."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PILLARS = {"linear_ssl": "LSSL", "ntk": "NTK", "kan": "KAN", "influence": "INF"}


def _note_ids(pillar, prefix):
    note = {"ntk": "ntk_shortcut"}.get(pillar, pillar)
    text = (ROOT / "theory" / f"{note}.md").read_text()
    return set(re.findall(rf"^### ({prefix}-\d+):", text, flags=re.M))


def _test_ids(pillar, prefix):
    text = (ROOT / "tests" / "theory" / f"test_{pillar}.py").read_text()
    nums = re.findall(rf"^def test_{prefix.lower()}_(\d+)\(", text, flags=re.M)
    return {f"{prefix}-{n}" for n in nums}


def _experiment_ids(pillar, prefix):
    ids = set()
    for f in (ROOT / "experiments" / pillar).glob("*.py"):
        ids |= set(re.findall(rf'"({prefix}-\d+)(?:\.[\w]+)?"', f.read_text()))
    return ids


def test_every_note_claim_has_a_test_and_back():
    for pillar, prefix in PILLARS.items():
        assert _note_ids(pillar, prefix) == _test_ids(pillar, prefix)


def test_experiment_claims_exist_in_the_notes():
    for pillar, prefix in PILLARS.items():
        missing = _experiment_ids(pillar, prefix) - _note_ids(pillar, prefix)
        assert not missing, f"experiment claim IDs without a theory note: {missing}"


def test_readme_index_lists_every_claim():
    index = (ROOT / "theory" / "README.md").read_text()
    for pillar, prefix in PILLARS.items():
        for cid in _note_ids(pillar, prefix):
            assert f"| {cid} |" in index, cid

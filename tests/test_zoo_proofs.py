"""The registry of claims (zoo_proofs.py) holds only what its tests prove, and covers the zoo."""
import importlib

import pytest
import zoo_proofs

import netspec
from netspec.lang.loader import load_spec

TESTS = sorted({p.test for p in zoo_proofs.PROOFS})


def _proof_cases(test: str) -> list:
    """The proofs the test function is parametrized with, read from its pytest marks."""
    file, _, function = test.partition("::")
    fn = getattr(importlib.import_module(file.removesuffix(".py")), function, None)
    assert fn is not None, f"{test}: no such test"
    marks = [m for m in getattr(fn, "pytestmark", []) if m.name == "parametrize"
             and m.args[0] == "proof"]
    assert len(marks) == 1, f"{test} is not parametrized by 'proof'"
    return [getattr(case, "values", (case,))[0] for case in marks[0].args[1]]


@pytest.mark.parametrize("test", TESTS)
def test_each_claim_is_a_case_of_the_test_it_names(test):
    assert _proof_cases(test) == zoo_proofs.cases(test)


def test_every_claim_is_about_a_zoo_spec_and_has_a_unique_id():
    zoo = set(netspec.zoo())
    for test in TESTS:
        ids = [p.id for p in zoo_proofs.cases(test)]
        assert len(ids) == len(set(ids)), f"{test}: repeated ids {ids}"
        assert set(p.spec for p in zoo_proofs.cases(test)) <= zoo


def test_every_spec_has_a_claim():
    assert [name for name in netspec.zoo() if not zoo_proofs.proven(name)] == []


@pytest.mark.parametrize("name", netspec.zoo())
def test_the_reference_a_spec_names_is_the_one_it_is_proven_against(name):
    named = load_spec(name).get("reference")
    tested = [p for p in zoo_proofs.PARITY if p.spec == name]
    if named:
        assert {p.reference for p in tested} == {named}, (
            f"{name} names {named}; its parity tests check {sorted({p.reference for p in tested})}")


def test_a_printed_total_is_matched_to_its_own_precision():
    claim = zoo_proofs.Derived("resnet20", "count", "t", printed="Table 6: 0.27M")
    assert claim.rounds_to_printed(269_722) and not claim.rounds_to_printed(279_722)
    claim = zoo_proofs.Derived("resnet1202", "count", "t", printed="Table 6: 19.4M")
    assert claim.rounds_to_printed(19_421_274) and not claim.rounds_to_printed(19_300_000)

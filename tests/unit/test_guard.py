"""The package lives under a source root named ``operator/``: the stdlib module must still win."""

import operator


def test_stdlib_operator_still_works() -> None:
    assert operator.eq(2, 2)
    assert operator.itemgetter(1)([0, 7]) == 7
    # The stdlib module, not a directory of this repository, answers to the name.
    assert not hasattr(operator, "__path__")
    assert "/operator/" not in (getattr(operator, "__file__", None) or "")


def test_kubatch_imports_from_its_source_root() -> None:
    import kubatch

    assert kubatch.API_VERSION == "kubatch.io/v1alpha1"

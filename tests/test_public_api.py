"""The import names of SPEC sections 6 and 8, and nothing else."""

import lifecycle as lc

SPEC_NAMES = {
    "Catalog",
    "CatalogError",
    "CatalogVersions",
    "Decision",
    "IdempotencyConflict",
    "InvalidInput",
    "LifecycleError",
    "OutOfOrder",
    "Receipt",
    "RuleViolation",
    "Settlement",
    "State",
    "Subscription",
    "Transition",
    "default_catalog",
    "load_catalog",
}


def test_all_is_the_spec_names_sorted() -> None:
    """__all__ lists exactly the SPEC's names, sorted, and each one resolves."""
    assert sorted(SPEC_NAMES) == lc.__all__
    for name in lc.__all__:
        assert getattr(lc, name) is not None


def test_state_values_are_the_specs() -> None:
    """The seven states carry the SPEC's string values."""
    assert [
        "none",
        "trial",
        "trial-exhausted",
        "enterprise-active",
        "quota-exhausted-payg",
        "unsubscribed",
        "expired",
    ] == [state.value for state in lc.State]
    assert "trial" == lc.State.TRIAL


def test_error_hierarchy() -> None:
    """Every error is a LifecycleError with a code; InvalidInput is also a ValueError."""
    for error in (
        lc.RuleViolation,
        lc.InvalidInput,
        lc.OutOfOrder,
        lc.IdempotencyConflict,
        lc.CatalogError,
    ):
        assert issubclass(error, lc.LifecycleError)
    assert issubclass(lc.InvalidInput, ValueError)


def test_value_objects_are_frozen() -> None:
    """Receipts, settlements, decisions and history entries cannot be altered."""
    decision = lc.Decision(True, "credits", None)
    try:
        decision.allowed = False  # type: ignore[misc]
    except AttributeError:
        pass
    else:
        raise AssertionError("Decision is mutable")

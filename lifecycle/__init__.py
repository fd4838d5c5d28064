"""lifecycle: the IMS subscription lifecycle as a guarded state machine.

The vendor's billing FAQ is the law: every rule in it is a guard, every
refusal names the rule it enforces. Import the names below; every other
module is implementation.
"""

from lifecycle.catalog import Catalog, CatalogVersions, default_catalog, load_catalog
from lifecycle.errors import (
    CatalogError,
    IdempotencyConflict,
    InvalidInput,
    LifecycleError,
    OutOfOrder,
    RuleViolation,
)
from lifecycle.states import State
from lifecycle.subscription import Subscription
from lifecycle.values import Decision, Receipt, Settlement, Transition

__all__ = [
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
]

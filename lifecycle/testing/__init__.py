"""A time-travel kit for the order services that embed this library.

``ManualClock`` stands still until told to move; ``TestClock`` moves a whole
store through month ends, trial ends and period ends in milliseconds. With
pytest installed this module is also a pytest plugin (entry point
``lifecycle``, or ``-p lifecycle.testing``) with the fixtures
``lifecycle_clock``, ``lifecycle_catalog``, ``lifecycle_store`` and
``lifecycle_test_clock`` and the options ``--lifecycle-db`` and
``--lifecycle-catalog``.
"""

from lifecycle.testing.clock import ManualClock
from lifecycle.testing.testclock import TestClock, TestClockError

__all__ = ["ManualClock", "TestClock", "TestClockError"]

try:
    import pytest  # noqa: F401
except ImportError:  # pragma: no cover - the kit works without pytest
    pass
else:
    from lifecycle.testing.plugin import (  # noqa: F401
        _lifecycle_server,
        lifecycle_catalog,
        lifecycle_clock,
        lifecycle_store,
        lifecycle_test_clock,
        pytest_addoption,
    )

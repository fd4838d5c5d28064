"""The ``lifecycle`` command: diagrams, rules, the simulator, catalog versions,
the worker, a customer's journey.

``main(argv=None) -> int`` is the whole program, callable from tests; the
console script and ``python -m lifecycle`` only hand its result to
``sys.exit``. Output goes to the ``rich`` console passed in (standard output
by default).
"""

from lifecycle.cli import catalog, diagrams, journey, rules, simulate, worker  # noqa: F401
from lifecycle.cli.app import cli, main, run

__all__ = ["cli", "main", "run"]

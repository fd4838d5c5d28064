"""``python -m lifecycle``: the same program as the ``lifecycle`` command."""

from lifecycle.cli import run

if __name__ == "__main__":
    run()

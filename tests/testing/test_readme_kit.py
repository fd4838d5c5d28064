"""The README's "Testing your order service" example is a test file: run it, as an
order service would, with the plugin the library installs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).parents[2] / "README.md"


def readme_file(name: str) -> str:
    text = README.read_text(encoding="utf-8")
    found = re.search(
        rf"<!-- readme-test: {re.escape(name)} -->\n```python\n(.*?)\n```", text, re.S
    )
    assert found, f"README.md has no block marked readme-test: {name}"
    return found.group(1)


def test_the_readme_example_passes(pytester: pytest.Pytester) -> None:
    """Every test of the README's example passes with the installed plugin."""
    pytester.makepyfile(test_order_service=readme_file("test_order_service.py"))
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_the_plugin_loads_by_name_without_auto_loading(pytester: pytest.Pytester) -> None:
    """Where plugins are not auto-loaded, -p lifecycle.testing brings the fixtures."""
    pytester.makepyfile(test_order_service=readme_file("test_order_service.py"))
    result = pytester.runpytest_subprocess(
        "-q", "-p", "no:cacheprovider", "-p", "lifecycle.testing", "-k", "month_end"
    )
    result.assert_outcomes(passed=1)


def test_a_catalog_option_and_a_postgresql_server(pytester: pytest.Pytester, pg_url: str) -> None:
    """--lifecycle-catalog loads the catalog given; --lifecycle-db runs the store on a
    database created on that server for the run (and dropped after it)."""
    catalog = pytester.path / "catalog.toml"
    source = (
        Path(__file__).parents[2] / "lifecycle" / "catalog" / "default_catalog.toml"
    ).read_text()
    catalog.write_text(source.replace('credits = "2000"', 'credits = "3000"', 1))
    pytester.makepyfile(
        test_options="""
        def test_options(lifecycle_catalog, lifecycle_store):
            assert 3000 == lifecycle_catalog.editions["basic"].credits
            assert lifecycle_store.engine.dialect.name == "postgresql"
            assert lifecycle_store.engine.url.database.startswith("lifecycle_test_")
        """
    )
    result = pytester.runpytest(
        "-q", "-p", "no:cacheprovider", f"--lifecycle-catalog={catalog}", f"--lifecycle-db={pg_url}"
    )
    result.assert_outcomes(passed=1)


def test_an_async_drivers_url_is_taken_as_psycopgs(pytester: pytest.Pytester, pg_url: str) -> None:
    """--lifecycle-db with the URL an async order service uses (psycopg_async) runs
    the store on psycopg, on a database made for the run."""
    import sqlalchemy as sa

    given = sa.make_url(pg_url).set(drivername="postgresql+psycopg_async")
    pytester.makepyfile(
        test_async_url="""
        def test_store(lifecycle_store):
            assert lifecycle_store.engine.url.drivername == "postgresql+psycopg"
        """
    )
    result = pytester.runpytest(
        "-q", "-p", "no:cacheprovider", f"--lifecycle-db={given.render_as_string(False)}"
    )
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ("sqlite:///kit.db", "sqlite is not PostgreSQL"),
        ("not a url", "--lifecycle-db"),
        ("postgresql+psycopg://nobody@127.0.0.1:1/postgres", "cannot create a test database"),
    ],
)
def test_a_lifecycle_db_that_is_no_postgresql_server_is_a_usage_error(
    pytester: pytest.Pytester, given: str, named: str
) -> None:
    """--lifecycle-db naming something else than a PostgreSQL server it can reach: a
    usage error saying so, not a SQLAlchemy traceback in each test's set-up."""
    pytester.makepyfile(
        test_store="""
        def test_store(lifecycle_store):
            pass
        """
    )
    result = pytester.runpytest("-q", "-p", "no:cacheprovider", f"--lifecycle-db={given}")
    assert named in result.stdout.str() + result.stderr.str()
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert 0 != result.ret

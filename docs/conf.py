"""Sphinx configuration: MyST Markdown, Furo, autodoc, sphinx-click, Mermaid.

Nothing is loaded from the internet: Mermaid's script is copied from the npm
package ``mermaid`` (``scripts/docs`` installs it under ``.ci/node``) into the
site's own ``_static``. Build: ``bash scripts/docs`` (warnings are errors).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import PycodeError
from sphinx.pycode import ModuleAnalyzer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

project = "lifecycle"
author = "the lifecycle engineers"
copyright = "2026, the lifecycle engineers"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx_click",
    "sphinxcontrib.mermaid",
]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
myst_fence_as_directive = ["mermaid"]

html_theme = "furo"
html_title = "lifecycle"
html_static_path = ["_static"]

autodoc_typehints = "description"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": False}

# Mermaid from the site itself (an ES module and its chunks), never a CDN.
MERMAID_DIST = Path(
    os.environ.get("LIFECYCLE_MERMAID_DIST", ROOT / ".ci/node/node_modules/mermaid/dist")
)
mermaid_use_local = "mermaid/mermaid.esm.min.mjs"
# The ELK layout, which the state diagram asks for (lifecycle.diagrams.mermaid).
ELK_DIST = Path(
    os.environ.get(
        "LIFECYCLE_MERMAID_ELK_DIST", ROOT / ".ci/node/node_modules/@mermaid-js/layout-elk/dist"
    )
)
mermaid_include_elk = True
mermaid_elk_use_local = "mermaid/elk/mermaid-layout-elk.esm.min.mjs"
mermaid_init_config = {"startOnLoad": False, "flowchart": {"htmlLabels": True}}
mermaid_fullscreen = False


def _copy_mermaid(app: Sphinx) -> None:
    target = Path(app.outdir) / "_static" / "mermaid"
    if target.exists():
        shutil.rmtree(target)
    for dist, name, into in (
        (MERMAID_DIST, "mermaid", target),
        (ELK_DIST, "mermaid-layout-elk", target / "elk"),
    ):
        module = dist / f"{name}.esm.min.mjs"
        if not module.exists():
            raise RuntimeError(
                f"Mermaid's script is missing at {module}: run `bash scripts/docs --deps-only`"
            )
        into.mkdir(parents=True)
        shutil.copy2(module, into)
        shutil.copytree(
            dist / "chunks" / f"{name}.esm.min",
            into / "chunks" / f"{name}.esm.min",
            ignore=shutil.ignore_patterns("*.map"),
        )


def _reexported_docs(
    app: Sphinx, what: str, name: str, obj: object, options: object, lines: list[str]
) -> None:
    """A constant a package re-exports (``lifecycle.store.SCHEMA_VERSION``) has its
    docstring where it is defined: autodoc only reads the package's own source
    (and falls back on the docstring of the value's type), so the entry takes
    it from there."""
    if what != "data":
        return
    package, _, attribute = name.rpartition(".")
    for module in [m for m in sys.modules if m.startswith(package + ".")]:
        try:
            docs = ModuleAnalyzer.for_module(module).find_attr_docs()
        except PycodeError:
            continue
        found = docs.get(("", attribute))
        if found and getattr(sys.modules[module], attribute, None) is obj:
            lines[:] = found
            return


def setup(app: Sphinx) -> None:
    app.connect("builder-inited", _copy_mermaid)
    app.connect("autodoc-process-docstring", _reexported_docs)

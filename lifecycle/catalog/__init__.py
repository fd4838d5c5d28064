"""The catalog: prices, quotas and names as data, in versions.

``model`` holds one version's frozen objects, ``parse`` reads TOML into them,
``versions`` is a sequence of versions in force one after another, ``diff``
says what a new version changes for whom. The shipped catalog is
``default_catalog.toml``.
"""

from lifecycle.catalog.model import AddonPackage, Catalog, Edition, Meter, TrialPackage
from lifecycle.catalog.parse import default_catalog, load_catalog
from lifecycle.catalog.versions import CatalogVersions

AnyCatalog = Catalog | CatalogVersions
"""What the library takes wherever a catalog is: one version, or several."""

__all__ = [
    "AddonPackage",
    "AnyCatalog",
    "Catalog",
    "CatalogVersions",
    "Edition",
    "Meter",
    "TrialPackage",
    "default_catalog",
    "load_catalog",
]

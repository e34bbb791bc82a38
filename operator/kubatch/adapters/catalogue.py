"""Reading the user's instance catalogue (a YAML file, e.g. a mounted ConfigMap or chart value).

The catalogue itself is pure data in ``kubatch.core.catalogue``; this adapter only reads the
document and hands it to ``parse_catalogue``.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from kubatch.core.catalogue import DEFAULT, Catalogue, CatalogueError, parse_catalogue


def load_catalogue(path: Path | str | None) -> Catalogue:
    """The built-in catalogue, extended/overridden by the YAML file at ``path`` if given.

    Raises :class:`CatalogueError` naming the file when it cannot be read or parsed.
    """
    if path is None or str(path) == "":
        return DEFAULT
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise CatalogueError(f"instance catalogue {p}: {err}") from None
    try:
        return parse_catalogue(doc)
    except CatalogueError as err:
        raise CatalogueError(f"instance catalogue {p}: {err}") from None

"""The methods: one module (or subpackage) per network family, each declaring its presets, network
factory, trainer and inference rules in a :class:`~napari_bsdenoise.registry.Method` record.

Adding a method: write its module here (and its torch module under :mod:`napari_bsdenoise.nn`), then
add it to ``METHODS`` below (docs/architecture.md walks through it).
"""

from .. import registry
from . import atbsn, bsgd, dbsn, student

#: Registered in this order (the order the CLI and the widgets list them).
METHODS = (atbsn.METHOD, dbsn.METHOD, student.METHOD, bsgd.METHOD)

for _method in METHODS:
    registry.register(_method)

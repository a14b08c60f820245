"""``python -m napari_bsdenoise.cli``: the ``napari-bsdenoise`` command."""

import sys

from . import main

sys.exit(main())

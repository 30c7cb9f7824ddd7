"""``python -m deeplsm`` is the ``deeplsm`` command."""

import sys

from deeplsm.cli import main

sys.exit(main())

"""``python -m icm_lib.cli``: the ``icm`` command."""

import sys

from icm_lib.cli import main

sys.exit(main())

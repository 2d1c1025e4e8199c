"""`python -m jupyter_codegemma.cli`: the `codegemma` command."""

import sys

from .main import main

sys.exit(main())

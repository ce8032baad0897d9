"""`python -m studio` is the same as `persona`."""

import sys

from studio.cli import main

sys.exit(main())

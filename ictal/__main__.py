"""`python -m ictal` (also what `torchrun -m ictal train ...` runs)."""

import sys

from ictal.cli import main

sys.exit(main())

"""`python -m diffrep_lib.cli`: the `diffrep` command."""
import sys

from . import main

sys.exit(main())

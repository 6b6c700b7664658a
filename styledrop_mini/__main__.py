"""`python -m styledrop_mini ...` is the `styledrop-mini` command."""
import sys

from .cli import main

sys.exit(main())

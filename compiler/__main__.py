"""`python -m netcc`."""

from netcc.cli import main

raise SystemExit(main())

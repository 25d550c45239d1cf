"""`python -m netcc`."""

from netcc.cli.main import main

raise SystemExit(main())

"""WireGuard tests: helpers in wgspecs.py (importable from the tests here)."""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

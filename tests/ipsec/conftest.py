"""IPsec tests: helpers in ipsecspecs.py (importable from the tests here). All pure: no root,
no kernel, no namespace."""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

"""IPsec on the node: the XFRM netlink client and the reconciler. Helpers in xfrmfake.py
(importable from the tests here)."""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

"""netcc: a compiler for cluster networking."""

__version__ = "0.1.0"

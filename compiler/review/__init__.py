"""Offline policy review: `netcc review`, `why`, `diff` and `lint`.

Every answer comes from `netcc.semantics.policy`, the model the datapath is generated from:
`connectivity` evaluates it symbolically (exact port sets per source and destination),
`why` explains single connections with it, and the tests hold both to the compiled programs
in the kernel.
"""

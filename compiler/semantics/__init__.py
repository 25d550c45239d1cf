"""The reference semantics: NetworkPolicy and the datapath's backend choice in Python.

The planner and the review tools are built on it, and the tests compare the kernel with it."""

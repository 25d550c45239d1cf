"""The lab: a spec's whole cluster on one machine, in network namespaces, with real packets."""

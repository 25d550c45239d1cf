"""The node daemon's side of CNI: the shim's wire protocol, the socket server, and IPAM.

`protocol` parses what `build/netcc-cni` forwards and builds what it prints, `server` serves
the unix socket and the DEL spool, `ipam` keeps the node's address allocations on disk.
"""

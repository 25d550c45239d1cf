"""Putting a program on a hook, one module per kind of attachment (as cilium/ebpf's `link/`).

- `hook`: what a hook is, whichever the kind: an interface's tc ingress or egress, the role
  of the interface (a pod's veth, the node's uplink) and the attach `Mode`.
- `tcx`: BPF links of Linux 6.6+ (BPF_LINK_CREATE with BPF_TCX_INGRESS/EGRESS), pinned.
- `tc`: direct-action cls_bpf filters on a clsact qdisc.

Each kind module offers the same four calls, `attach`, `replace`, `detach` and `state`;
`netcc.loader.attach` dispatches to the hook's kind.
"""

"""Stage 4, resolve: what the spec's names and selectors stand for (`resolution.resolve`).

Identities, workload numbers, peer classes, the policies selecting each pod, the classes
each rule's peers match, named ports, service backends: computed once, read by the planner.
"""

"""Stage 5, plan: every node's map contents and the verdict behind each entry (a typed IR).

It reads the resolve stage's result and only lays out map entries, one module per concern:
`verdicts`, `policy`, `endpoints`, `ipcache`, `services` (with `maglev`), `sizing`; `planner`
puts them together and checks every entry against the contract's layouts.
"""

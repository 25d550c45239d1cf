#!/usr/bin/env bash
# Run every netcc benchmark; figures go to stdout (paste into BENCHMARKS.md).
# Needs root (BPF loads), clang, bpftool and the netcc package installed (make setup).
# Compiled sweep outputs are kept in $NETCC_BENCH_DIR (default /tmp/netcc-bench) and reused
# while the spec, netcc's sources and clang stay the same. About 3 minutes on 2 cores, 4 when
# the sweep is not cached yet; most of it compiles the 3,000-workload and 10,000-rule specs.
set -euo pipefail
cd "$(dirname "$0")/.."
for script in compile_scale verifier datapath_cost datapath_parts; do
	python3 "bench/${script}.py"
	echo
done

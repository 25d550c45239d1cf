#!/usr/bin/env bash
# The main job: compile the example, prove OUT is reproducible, load it through the kernel
# verifier, and send allowed and denied packets through the compiled datapath.
set -euo pipefail
spec=${1:-examples/shop.yaml}
out=${2:-out/shop}

step() { printf '\n== %s\n' "$*"; }

step "compile $spec"
netcc compile "$spec" -o "$out"

step "reproducible: a second compile from another directory is byte-identical"
again=$(mktemp -d)
trap 'rm -rf "$again"' EXIT
(cd "$again" && netcc compile "$OLDPWD/$spec" -o "$again/out" -q)
diff -r "$out" "$again/out" && echo "identical"
netcc check "$spec" "$out"

step "a bad spec is refused with file:line:col, and $out stays as it was"
bad="$again/bad.yaml"
sed 's/podSelector: {matchLabels: {app: cart}}/podSelectr: {matchLabels: {app: cart}}/' "$spec" > "$bad"
netcc compile "$bad" -o "$out" && { echo "bad spec accepted"; exit 1; } || true
netcc check "$spec" "$out"

if [ "$(id -u)" != 0 ]; then
  echo "not root: skipping the kernel steps (verify, trace)"
  exit 0
fi

step "every program and every node's maps through the kernel verifier"
netcc verify "$out"

step "packets through the compiled datapath (BPF_PROG_TEST_RUN), each verdict from the kernel"
probe() { netcc trace "$out" "$@" || true; }
probe --from 192.0.2.7   --to 10.244.1.10 --port 8080               # internet -> frontend http
probe --from 203.0.113.5 --to 10.244.1.10 --port 8080               # blocked range
probe --from 10.244.1.10 --to 10.244.2.10 --port 7000               # frontend -> cart api
probe --from 10.244.1.10 --to 10.244.2.11 --port 6379               # frontend -> cache: denied
probe --from 10.244.2.10 --to 10.244.3.10 --port 50051              # cart -> payments grpc
probe --from 10.244.3.20 --to 10.244.2.10 --port 9100               # prometheus scrapes cart
probe --from 10.244.3.20 --to 10.244.2.11 --port 9100               # cache has no metrics rule
probe --from 10.244.2.10 --to 10.244.2.11 --port 6379 --protocol UDP  # wrong protocol

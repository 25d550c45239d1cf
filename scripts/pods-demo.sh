#!/usr/bin/env bash
# The runtime-pod demo: a spec of workload classes (examples/pods.yaml) in the lab. `lab up`
# starts a node daemon (`netcc load run`) on every node; `lab pod add` networks a pod through
# the real CNI plugin (build/netcc-cni) as a container runtime would; probes show the pods
# judged by their class from the first packet, across nodes; a pod of no class is refused;
# `netcc observe` shows each verdict with its rule; services over classes send to the ready
# pods only (`lab pod ready`); `lab pod del` and
# `lab down` leave nothing. Everything is removed again, also on failure.
set -euo pipefail
spec=${1:-examples/pods.yaml}
out=${2:-out/pods}

step() { printf '\n== %s\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
  echo "the lab needs root (network namespaces, BPF)"
  exit 1
fi

step "compile $spec: classes get a block of addresses on every node"
netcc compile "$spec" -o "$out"
python3 - "$out/classes.json" <<'EOF'
import json, sys
for c in json.load(open(sys.argv[1]))["classes"]:
    labels = ",".join(f"{k}={v}" for k, v in c["match"].items())
    b = c["block"]
    print(f"  class {c['key']:<24} {labels:<16} block at offset {b['offset']}, {b['size']} addresses")
EOF

step "bring the cluster up: a node daemon per node serves the CNI"
trap 'step "tear down"; netcc lab down >/dev/null && echo "lab removed"' EXIT
netcc lab up "$spec" --artifacts "$out"

step "pods added at runtime, on different nodes (labels beyond those that matter are ignored)"
netcc lab pod add shop/web-7c9 --node node-1 --labels app=web,pod-template-hash=7c9 --json
netcc lab pod add shop/api-5d8 --node node-2 --labels app=api,pod-template-hash=5d8
netcc lab pod add monitoring/prom-0 --node node-3 --labels app=prometheus

step "probes: real connections, judged by each pod's class (the static db is on node-3)"
probe() {
  local rc=0
  netcc lab probe "$@" || rc=$?
  [ "$rc" = 0 ] || [ "$rc" = 4 ] || exit "$rc"   # 4 is "denied"; anything else is an error
}
probe shop/web-7c9 shop/api-5d8 9000/tcp          # web -> api (node-1 -> node-2): allowed
probe shop/api-5d8 shop/db 5432/tcp               # api -> db (static): allowed
probe monitoring/prom-0 shop/db 5432/tcp          # monitoring -> db: allowed
probe monitoring/prom-0 shop/web-7c9 8080/tcp     # prometheus -> web: allowed
probe shop/web-7c9 shop/db 5432/tcp               # web -> db: denied
probe monitoring/prom-0 shop/api-5d8 9000/tcp     # prometheus' egress: denied
probe shop/web-7c9 shop/api-5d8 9000/udp          # wrong protocol: denied

step "what the datapath decided, as every node daemon saw it (netcc observe, across the lab)"
netcc observe --verdict dropped --last 3           # the denies, naming both pods and the rule
netcc observe --pod shop/api-5d8 --verdict forwarded --last 2

step "services over classes: their backends are the ready pods of the classes they select"
python3 - "$out/services.json" <<'EOF'
import json, sys
for p in json.load(open(sys.argv[1]))["ports"]:
    classes = ", ".join(f"{c['class']} :{c['targetPort']}" for c in p["classes"])
    print(f"  {p['service']} port {p['port']}/{p['protocol']}: the ready pods of {classes}")
EOF
netcc lab pod add shop/web-b41 --node node-3 --labels app=web --ready
netcc lab pod ready shop/web-7c9 true     # returns once every node's datapath uses it
netcc lab pod ready shop/api-5d8 true
probe monitoring/prom-0 svc:shop/web 80/tcp --count 40   # both web pods; policy judges 8080
netcc lab pod ready shop/web-b41 false    # no new connection goes to it
probe monitoring/prom-0 svc:shop/web 80/tcp --count 20   # web-7c9 only
probe shop/web-7c9 svc:shop/api 9000/tcp                 # web -> api: allowed
probe monitoring/prom-0 svc:shop/api 9000/tcp            # denied: the backend is judged

step "a pod of no class gets no network (CNI error 100), and nothing is left of it"
netcc lab pod add shop/stray --node node-2 --labels app=cache \
  && { echo "a pod of no class was accepted"; exit 1; } || true
ip netns list | grep -q netcc-rpod-shop.stray && { echo "its namespace is left"; exit 1; } || true

step "a new pod reuses nothing a living pod holds; a deleted pod leaves nothing"
netcc lab pod add shop/api-9f1 --node node-2 --labels app=api
netcc lab pod del shop/api-5d8
probe shop/web-7c9 shop/api-9f1 9000/tcp          # allowed from its first packet

step "status: static and runtime pods, their class and address"
netcc lab status

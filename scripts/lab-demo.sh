#!/usr/bin/env bash
# The lab demo: compile the example, build its cluster from network namespaces with an outside
# host, load the datapath on every node, send real TCP and UDP (allowed and denied, each with
# the rule that decided it), and tear everything down again, also when a step fails.
set -euo pipefail
spec=${1:-examples/shop.yaml}
out=${2:-out/shop}

step() { printf '\n== %s\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
  echo "the lab needs root (network namespaces, BPF)"
  exit 1
fi

step "compile $spec"
netcc compile "$spec" -o "$out"

step "bring the cluster up: a namespace per node and pod, an underlay, an outside world"
trap 'step "tear down"; netcc lab down >/dev/null && echo "lab removed"' EXIT
netcc lab up "$spec" --artifacts "$out" --external 192.0.2.7 203.0.113.5

step "probes: real connections between namespaces, through the loaded datapath"
probe() {
  local rc=0
  netcc lab probe "$@" || rc=$?
  [ "$rc" = 0 ] || [ "$rc" = 4 ] || exit "$rc"   # 4 is "denied"; anything else is an error
}
probe 192.0.2.7 shop/frontend 8080/tcp                     # internet -> frontend http
probe 203.0.113.5 shop/frontend 8080/tcp                   # blocked range
probe shop/frontend shop/cart 7000/tcp                     # frontend -> cart api
probe shop/frontend shop/cache 6379/tcp                    # frontend -> cache: denied
probe shop/cart payments/payments-api 50051/tcp            # cart -> payments grpc
probe monitoring/prometheus shop/cart 9100/tcp             # prometheus scrapes cart
probe monitoring/prometheus shop/cache 9100/tcp            # cache has no metrics rule
probe shop/cart shop/cache 6379/udp                        # wrong protocol
probe shop/cart shop/frontend 8080/tcp                     # replies pass, new flows back do not

step "services: backends answer with their name; the probe counts who answered"
probe shop/frontend svc:shop/cart 7000/tcp --count 20      # ClusterIP 10.96.0.20 -> cart
probe 192.0.2.7 node-1 30080/tcp --count 20                # NodePort on node-1 -> frontend
probe 192.0.2.7 node-2 30080/tcp                           # Local: node-2 has no frontend

step "status"
netcc lab status

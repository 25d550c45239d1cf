#!/usr/bin/env bash
# The encryption demo: the example with WireGuard between its nodes. Key pairs are generated
# into a private temporary directory, the printed `nodes:` block goes into a copy of the spec,
# and the lab shows what issue 5 promises: pod-to-pod TCP across nodes works, the underlay
# carries only WireGuard's UDP between node addresses, every node has a handshake with every
# other, and no file of OUT holds a private key. Everything is removed again, also on failure.
set -euo pipefail
spec=${1:-examples/shop.yaml}
out=${2:-out/shop-encrypted}

step() { printf '\n== %s\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
  echo "the lab needs root (network namespaces, BPF, wireguard-go)"
  exit 1
fi

work=$(mktemp -d /var/tmp/netcc-wireguard-demo.XXXXXX)  # not /tmp: a loader pod uses its own
chmod 700 "$work"
capture_pid=""
lab_up=""
cleanup() {
  [ -n "$capture_pid" ] && kill "$capture_pid" 2>/dev/null || true
  if [ -n "$lab_up" ]; then
    step "tear down"
    netcc lab down >/dev/null && echo "lab removed"
  fi
  rm -rf "$work"
}
trap cleanup EXIT

step "a key pair per node (private keys 0600, never in the spec or OUT)"
netcc keys generate --out "$work/keys" --spec "$spec" > "$work/nodes.yaml"
ls -l "$work/keys" | sed 1d
cat "$work/nodes.yaml"

step "the spec with encryption: the printed block under spec.encryption.wireguard"
encrypted="$work/$(basename "$spec" .yaml)-encrypted.yaml"
{
  cat "$spec"
  printf '  encryption:\n    wireguard:\n      enabled: true\n'
  sed -e '/^#/d' -e 's/^/      /' "$work/nodes.yaml"
} > "$encrypted"
netcc compile "$encrypted" -o "$out"
echo "node-1's tunnel plan ($out/nodes/node-1/wireguard.json):"
python3 - "$out/nodes/node-1/wireguard.json" <<'EOF'
import json, sys
p = json.load(open(sys.argv[1]))
print(f"  {p['ifname']} port {p['listenPort']} mtu {p['mtu']} key file {p['privateKeyFile']}")
for peer in p["peers"]:
    print(f"  peer {peer['node']}: {peer['endpoint']}, allowed IPs {', '.join(peer['allowedIPs'])}")
EOF

step "no file in $out holds a private key"
if grep -rlF -f <(cat "$work"/keys/*.key) "$out"; then
  echo "a private key leaked into $out"
  exit 1
fi
echo "none of the $(ls "$work"/keys/*.key | wc -l) private keys appears in $(find "$out" -type f | wc -l) files"

step "the lab with encryption: wireguard-go on every node, pod CIDRs routed through the tunnels"
netcc lab up "$encrypted" --artifacts "$out" --external 192.0.2.7
lab_up=1

step "a capture on node-2's underlay while pods talk across nodes"
nsenter --net=/run/netns/netcc-node-2 tcpdump -i eth0 -n -U -w "$work/underlay.pcap" \
  not arp 2>/dev/null &
capture_pid=$!
sleep 1
probe() {
  local rc=0
  netcc lab probe "$@" || rc=$?
  [ "$rc" = 0 ] || [ "$rc" = 4 ] || exit "$rc"
}
probe shop/frontend shop/cart 7000/tcp                     # node-1 -> node-2, allowed
probe shop/cart payments/payments-api 50051/tcp            # node-2 -> node-3, allowed
probe monitoring/prometheus shop/cache 9100/tcp            # node-3 -> node-2, denied by policy
sleep 1
kill "$capture_pid"
wait "$capture_pid" 2>/dev/null || true
capture_pid=""
tcpdump -n -r "$work/underlay.pcap" 2>/dev/null > "$work/underlay.txt"
echo "$(wc -l < "$work/underlay.txt") packets on node-2's eth0; a few of them:"
head -4 "$work/underlay.txt" | cut -c1-110
python3 - "$work/underlay.txt" <<'EOF'
import re, sys
lines = open(sys.argv[1]).read().splitlines()
bad = [l for l in lines if not re.search(r"IP 192\.168\.77\.\d+\.51871 > 192\.168\.77\.\d+\.51871: UDP", l)]
pods = [l for l in lines if "10.244." in l]
print(f"not WireGuard UDP between node addresses on 51871: {len(bad)}; naming a pod address: {len(pods)}")
sys.exit(1 if bad or pods or not lines else 0)
EOF

step "wg show on every node: the other two, each with a handshake"
for node in node-1 node-2 node-3; do
  echo "-- $node"
  netcc lab wg "$node" | grep -E '^(interface|peer|  (public key|endpoint|allowed ips|latest handshake))'
done

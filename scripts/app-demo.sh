#!/usr/bin/env bash
# Compiling the cluster from the manifests users already have: examples/app is a kustomize
# base with staging and prod overlays; its netcc spec names only nodes and CIDRs, and takes
# namespaces, workload classes (one per pod template), services and NetworkPolicies from the
# rendered overlay (`spec.sources`). No root needed: nothing is loaded.
set -euo pipefail
app=${1:-examples/app}
out=${2:-out/app}

step() { printf '\n== %s\n' "$*"; }

if command -v kubectl >/dev/null 2>&1; then
  step "the rendered overlay is what kustomize builds (kubectl kustomize)"
  kubectl kustomize "$app/overlays/prod" 2>/dev/null | python3 -c '
import sys, yaml
built = sorted(repr(sorted(d.items())) for d in yaml.safe_load_all(sys.stdin) if d)
have = sorted(repr(sorted(d.items())) for d in yaml.safe_load_all(open(sys.argv[1])) if d)
print("  same objects" if built == have else "  differs: render again"); sys.exit(built != have)
' "$app/rendered/prod.yaml"
fi

step "compile prod from its manifests: notes say what the manifests leave to netcc"
netcc compile "$app/netcc.yaml" -o "$out"

step "the same from standard input (netcc-stdin.yaml reads source \"-\")"
netcc compile "$app/netcc-stdin.yaml" -o "$out-stdin" -q < "$app/rendered/prod.yaml"
echo "  compiled $out-stdin"

step "why: the verdicts cite the manifests' own lines"
netcc why "$app/netcc.yaml" --from shop/cart --to shop/db --port 5432
netcc why "$app/netcc.yaml" --from shop/frontend --to shop/db --port 5432 || true

step "what changes from staging to prod (the overlays differ)"
rc=0
netcc diff "$app/netcc-staging.yaml" "$app/netcc.yaml" > "$out.diff" || rc=$?
[ "$rc" = 0 ] || [ "$rc" = 1 ] || exit "$rc"   # 1: they differ
head -8 "$out.diff"; echo "  ... $(wc -l < "$out.diff") lines in all"

step "netcc check: OUT recorded every manifest's digest"
netcc check "$app/netcc.yaml" "$out"

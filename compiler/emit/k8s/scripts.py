"""The shell the loader pod runs: assemble the node's OUT, apply it forever, probe it.

The scripts are constants: they read their inputs from the environment only (NODE_NAME from
the downward API, the paths from the container spec), so nothing from the spec is ever
interpreted by a shell. They contain neither `$(` nor `$$`, so kubelet's `$(VAR)` expansion
of container commands leaves them exactly as written here.
"""

from __future__ import annotations

from netcc.emit.k8s.constants import (
    BPFFS_DIR,
    ENV_ARTIFACTS,
    ENV_COMPILED,
    ENV_INTERVAL,
    ENV_NODE,
    ENV_TMP,
)

SHELL = "/bin/sh"

# Init container: the projected ConfigMaps -> exactly this node's OUT in an emptyDir. The
# projected volume keeps its files behind `..data` symlinks (kubelet's atomic writer), which
# the loader's "no file outside the lock" check would see; the copy is plain files only.
ASSEMBLE = f"""\
set -eu
src="${ENV_COMPILED}" dst="${ENV_ARTIFACTS}" node="${ENV_NODE}"
if [ ! -d "$src/node/$node" ]; then
  echo "netcc: no artifacts for node $node: it is not a node of the compiled spec" >&2
  exit 1
fi
find "$dst" -mindepth 1 -delete
cp -RL "$src/common/." "$dst/"
cp -RL "$src/node/$node/." "$dst/"
find "$dst" -type f -name '*.netcc-part-0000' | sort | while read -r first; do
  file="${{first%.netcc-part-0000}}"
  cat "$file".netcc-part-* > "$file"
  rm -f "$file".netcc-part-*
done
echo "netcc: node $node: artifacts assembled in $dst"
"""

# Main container: apply, then re-apply every NETCC_REAPPLY_SECONDS (idempotent: "unchanged",
# or "repaired" when a pod's interface came back). Exiting detaches nothing: the programs stay
# attached (pinned links, tc filters) while the pod restarts or is replaced.
LOADER = f"""\
set -eu
trap 'exit 0' TERM INT
if ! stat -f -c %T {BPFFS_DIR} | grep -qx bpf_fs; then
  echo "netcc: {BPFFS_DIR} is not the host's bpf filesystem; mount it on the host" >&2
  exit 1
fi
while :; do
  netcc load apply "${ENV_ARTIFACTS}" --node "${ENV_NODE}" ||
    echo "netcc: apply failed; what was attached stays attached; retrying" >&2
  sleep "${ENV_INTERVAL}" &
  wait "$!"
done
"""

# Liveness (and startup): every hook of what is applied is attached.
ALIVE = f'exec netcc load status --node "${ENV_NODE}"'

# Readiness: that, and what is applied is this pod's artifacts (so a rollout halts on a node
# whose new version failed to apply, while the node keeps enforcing the previous one).
READY = f"""\
set -e
netcc load status --node "${ENV_NODE}" --json > "${ENV_TMP}/netcc-status.json"
sha256sum "${ENV_ARTIFACTS}/netcc.lock.json" | {{
  read -r digest _
  grep -q "\\"digest\\": \\"$digest\\"" "${ENV_TMP}/netcc-status.json" || {{
    echo "netcc: ${ENV_NODE} does not run artifacts $digest yet" >&2
    exit 1
  }}
}}
"""


def command(script: str) -> list[str]:
    """A container command running `script` with the POSIX shell."""
    return [SHELL, "-c", script]

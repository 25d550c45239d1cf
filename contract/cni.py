"""Where the CNI pieces meet on a node: the plugin binary's name, the daemon's socket, its
data directory, the network config it writes and its metrics port. The compiler's manifests
(OUT/k8s) and the node daemon both read these; the Go shim (`cni/`) takes the socket from the
network config.
"""

from __future__ import annotations

PLUGIN_TYPE = "netcc-cni"  # the binary in the host's CNI bin dir, and the config's `type`
HOST_CNI_BIN_DIR = "/opt/cni/bin"
HOST_CNI_CONF_DIR = "/etc/cni/net.d"
CONFLIST_NAME = "10-netcc.conflist"  # sorts before other runtimes' defaults
SOCKET_PATH = "/run/netcc/cni.sock"  # the same path on the host and in the daemon's pod
DATA_BASE = "/var/lib/netcc"  # per node: DATA_BASE/NODE (addresses, accepted artifacts)
HOST_NETNS_DIR = "/run/netns"  # where container runtimes bind-mount pod network namespaces
IMAGE_CNI_BINARY = "/opt/netcc/cni/netcc-cni"  # in the loader image (Containerfile)
METRICS_PORT = 9967  # the daemon's /metrics (hostNetwork: a port of the host)

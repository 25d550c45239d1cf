"""WireGuard tunnels between nodes: one reconciler, a kernel and a userspace backend."""

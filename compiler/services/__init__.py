"""Services without kube-proxy: backends, Maglev tables and the load-balancing plan."""

"""Stage 6, emit: the plan rendered to C, map data, tunnel plans and Kubernetes manifests."""

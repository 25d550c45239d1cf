"""Kubernetes manifests as a source of a spec: read, translated, merged (issue 15)."""

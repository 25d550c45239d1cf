"""The node daemon: the loader, long-running; the CNI plugin's other half."""

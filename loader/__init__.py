"""netcc loader: attaches compiled artifacts to a node. Never reads the spec."""

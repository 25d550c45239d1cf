"""Stage 8, write: the only stage that touches the disk; and `netcc check`, which reads back."""

"""Stage 5, plan: every node's map contents and the verdict behind each entry (a typed IR)."""

"""Stage 1, load: YAML text to plain objects, every value's line and column kept."""

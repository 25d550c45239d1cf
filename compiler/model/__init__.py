"""Stage 3, model: the typed, immutable model of a valid spec, and how it is built."""

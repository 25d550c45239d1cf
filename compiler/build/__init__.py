"""Stage 7, build: clang turns the generated C into BPF objects."""

"""Stage 4, resolve: identities, service backends; what the spec's names and selectors stand for."""

"""The `netcc` command line: argument parsing and output for every command.

The only package that imports the compiler, the loader and the lab together."""

"""The contract between the compiler and the loader: what OUT holds and how to read it.

Map layouts, the verdict table, every flag and constant shared by C and Python, program
names, the tunnel document, the lock and map-file formats. The compiler (`netcc`) and the
loader (`netcc.loader`) both depend on this package and never on each other's internals."""

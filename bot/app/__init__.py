"""The composition root: the HTTP server, the command line, the wiring and ``doctor``.

It sits above everything and nothing imports it (an import-linter contract in
``make test`` keeps it so): it builds the store, the kernel, the flows and the
channel adapters and plugs them together.
"""

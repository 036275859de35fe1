"""The package version, in a module of its own so that anything (the store's provenance stamp,
the CLI's --version) can read it without importing the `ildata` package's lazy exports."""

__version__ = "0.1.0"

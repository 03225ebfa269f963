"""The package version (recorded in every artefact painterid writes)."""

__version__ = "0.1.0"

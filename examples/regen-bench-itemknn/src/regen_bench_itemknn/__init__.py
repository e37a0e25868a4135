"""Example regen-bench model plugin: item-based k-nearest-neighbours."""

__version__ = "0.1.0"

"""Swaparoony: the framework-free face-swap core that the BentoML service wraps."""

__version__ = "0.1.0"

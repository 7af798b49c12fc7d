"""Shipyard: self-hosted continuous integration, delivery and infrastructure as code."""

__version__ = "0.1.0"
__all__ = ["__version__"]

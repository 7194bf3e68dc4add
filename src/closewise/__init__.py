"""Closewise: self-hosted revenue forecasting and sales coaching."""

__version__ = "0.1.0"

"""Loyalist: a self-hosted loyalty and customer-relationship platform."""

__version__ = "0.1.0"

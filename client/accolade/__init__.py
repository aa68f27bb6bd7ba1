"""Accolade client: talk to an Accolade badge & achievement server."""

__version__ = "0.1.0"

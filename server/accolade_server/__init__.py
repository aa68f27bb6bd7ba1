"""Accolade server: turns what users do into progress, badges, points and live awards."""

__version__ = "0.1.0"

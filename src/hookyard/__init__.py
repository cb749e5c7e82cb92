"""Hookyard: a durable, self-hostable webhook gateway."""

__version__ = "0.1.0"

"""dialback: a self-hosted, GES-compatible callback engagement service."""

__version__ = "0.1.0"

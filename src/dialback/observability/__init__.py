"""Observability: business events, logging setup (metrics and health come with issue 3)."""

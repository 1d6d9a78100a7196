"""Tenants (contact centres) and their API keys."""

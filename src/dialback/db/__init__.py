"""The store: one schema for PostgreSQL and SQLite, engines and migrations."""

"""Callbacks: the public Engagement API, the booking rules, and their store."""

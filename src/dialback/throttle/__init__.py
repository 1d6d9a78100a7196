"""Throttle counters shared by every replica, and their Redis client."""

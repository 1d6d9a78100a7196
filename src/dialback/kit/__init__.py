"""Leaf helpers shared by every layer; nothing here imports from dialback."""

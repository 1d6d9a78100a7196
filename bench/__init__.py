"""dialback's benchmark suite: ``python -m bench`` (``make bench``, ``make bench-quick``).

See docs/performance.md for what is measured, how, and the latest figures.
"""

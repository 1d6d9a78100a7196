"""The callback monitor: claims due callbacks, dispatches them, applies routing outcomes."""

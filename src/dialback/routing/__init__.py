"""The routing side: the dispatch stream, outcome events, and the routing simulator."""

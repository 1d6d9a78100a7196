"""Statistics of dialback's own virtual queues, served where GES proxies Genesys statistics."""

"""The admin API on the internal port: tenants, keys, services, call-in groups, callbacks."""

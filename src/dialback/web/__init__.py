"""HTTP plumbing only (envelope, middleware, error handlers, probes, the fast route); no business rules."""

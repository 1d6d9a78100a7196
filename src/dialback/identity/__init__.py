"""Operator identity: roles and permissions, principals, admin tokens, OIDC, local users,
sessions, audit and brute-force limits."""

"""Retention (purging old personal data in small batches) and erasure (GDPR) with its audit."""

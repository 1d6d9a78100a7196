"""Services (GES virtual queues) and the rules a contact centre configures on them."""

"""An app module that fails while it is imported, as one missing its configuration does."""

raise RuntimeError("BILLING_DATABASE_URL is not set")

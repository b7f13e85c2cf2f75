"""End-to-end tests: the real Dagster webserver, driven over GraphQL."""

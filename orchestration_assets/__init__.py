"""Dagster assets of the AI orchestration platform, grouped by concern; definitions.py assembles them."""

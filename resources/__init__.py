"""Dagster resources: warehouse, model providers, router, policy, notifier."""

"""Plain logic (no Dagster): parsing, sample data, KPI maths. Assets call into it."""

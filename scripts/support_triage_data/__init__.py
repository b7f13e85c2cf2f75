"""Generator of the support_triage family data (see generate.py)."""

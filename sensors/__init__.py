"""Sensors and schedules: the inbox, review decisions, run failures, and the recurring jobs."""

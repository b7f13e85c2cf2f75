"""Browser tests: the review service driven in a real Chromium."""

"""Asset checks: Great Expectations data checks, AI-output guardrails, promotion gates."""

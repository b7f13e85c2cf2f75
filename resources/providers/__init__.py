"""Model providers: one typed, batch-first interface; local (embedded) and OpenAI-compatible."""

"""The optional LLM advisor (docs/advisor.md): a daily review of each user's performance by a model behind an
OpenAI-compatible HTTP API, stored and shown; it acts (a retraining) only when an operator allows it."""

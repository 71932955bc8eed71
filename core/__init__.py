"""Plumbing every app may use and that knows no app: raw SQL drivers (`core.sql`) and the API's error
body (`core.api`). It imports nothing of ours; see docs/architecture.md."""

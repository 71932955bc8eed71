"""The trader's web pages (docs/web.md): server-rendered, live over `/ws/updates/`, above every app."""

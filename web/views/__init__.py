"""The trader's pages, one module per page (docs/web.md#pages)."""

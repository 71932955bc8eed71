"""The candle store (docs/market-data.md): pure rules (`rules`), writes (`services`), reads (`selectors`)."""

"""Analytics Pipeline: playback event ingest batched into ClickHouse."""

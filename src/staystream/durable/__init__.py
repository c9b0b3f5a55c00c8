"""Where writes become durable: the embedded SQLite store, PostgreSQL, calendar snapshots."""

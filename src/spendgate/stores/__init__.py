"""Storage backends: counters (memory | redis) and the database (SQLAlchemy)."""

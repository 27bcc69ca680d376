"""Database access: schema, engines per backend, and migrations."""

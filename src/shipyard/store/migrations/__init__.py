"""Alembic migrations of the store's database."""

"""Alembic migrations of the ci service's database."""

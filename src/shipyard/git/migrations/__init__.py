"""Alembic migrations of the git service's database."""

"""Revisions of the ci schema."""

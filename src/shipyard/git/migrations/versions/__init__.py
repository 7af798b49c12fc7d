"""Revisions of the git service's schema."""

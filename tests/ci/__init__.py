"""Tests of the ci service."""

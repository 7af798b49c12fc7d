"""Tests of the built-in infra providers, each against the real thing it manages."""

"""Tests of the infra library: stacks, state, engine, CLI and providers."""

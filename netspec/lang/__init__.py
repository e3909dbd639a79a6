"""The spec language: loading with source positions, expressions, overrides and the resolve pass."""

"""Handlers per command family."""

"""Errors of the control plane, under one root."""

from __future__ import annotations


class ControlPlaneError(Exception):
    """Root of every error the control plane raises on purpose."""


class ConfigurationError(ControlPlaneError, ValueError):
    """The environment does not describe a usable control plane (missing or bad setting)."""


DATABASE_UNAVAILABLE = "the control plane cannot reach its database; retry later"
"""The reason of the 503 any route answers when its database cannot be reached."""

"""Errors of the control plane, under one root."""

from __future__ import annotations


class ControlPlaneError(Exception):
    """Root of every error the control plane raises on purpose."""


class ConfigurationError(ControlPlaneError, ValueError):
    """The environment does not describe a usable control plane (missing or bad setting)."""

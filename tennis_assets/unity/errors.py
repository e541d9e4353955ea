"""The Unity adapter's errors: each names the build (or port) and what is wrong with it."""

from __future__ import annotations


class UnityError(RuntimeError):
    """Base class of the adapter's errors."""


class UnityBuildError(UnityError):
    """The build cannot be launched, or is not a game the adapter can play (discrete actions,
    visual observations, agents that do not form courts)."""


class UnityTimeoutError(UnityError):
    """The build (or Editor) did not answer within the timeout."""


class UnityConnectionError(UnityError):
    """The build exited or closed the connection, or its port is taken."""

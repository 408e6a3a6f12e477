"""Invariants: what must hold by construction, checked at run time, never voted on.

A check that cannot fail (an identity that holds by construction, e.g. V(D, G) <= C(G) when both
are computed on the same grid, or autograd against its own closed form) says nothing about a
claim. Such a statement is an invariant: the experiment calls :func:`require`, which raises
:class:`InvariantError` when it is violated; the pipeline then records the claim as ``error`` (a
bug in the code or the numerics, not a finding about the paper), and the claim's verdict comes
from its falsifiable checks alone.
"""

from __future__ import annotations


class InvariantError(AssertionError):
    """Something that holds by construction did not: the experiment's result cannot be trusted."""


def require(condition: bool, message: str) -> None:
    """Raise :class:`InvariantError` with ``message`` (give the numbers) unless ``condition``.

    Example:
        >>> require(1 + 1 == 2, "arithmetic")
    """
    if not bool(condition):
        raise InvariantError(f"invariant violated: {message}")

"""Projection (and later prediction) heads placed on top of a backbone's pooled features."""

from hpt.heads.projection import ProjectionMLP

__all__ = ["ProjectionMLP"]

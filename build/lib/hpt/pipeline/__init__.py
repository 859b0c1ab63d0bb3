"""Chains of stages (base -> source -> ... -> target) and the lineage of any hpt file."""

"""Evaluation on frozen features: one feature extractor, one evaluation view, protocols by name."""

"""The bottom layer: what every other layer shares, importing nothing of hpt's but its errors.

Cross-process helpers (`distributed`, `global_batch_norm`), seeds that every process derives alike (`seeds`), the
one schedule, EMA and parameter-group helpers, and the names of a run folder's files (`run_files`). Packages
import downwards only: `tests/test_layers.py` checks that no two packages import each other.
"""

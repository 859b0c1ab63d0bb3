"""The top layer: one training run (`loop.py`) and what starts and guards it (devices, run folders, `--auto`)."""

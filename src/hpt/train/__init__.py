"""The one training loop and its helpers: schedules, EMA, parameter groups."""

"""semst.training."""

"""CUT's learning-rate schedule: constant for ``constant_epochs``, then linear decay over ``decay_epochs``."""

from __future__ import annotations


def linear_decay_factor(epoch: int, constant_epochs: int, decay_epochs: int) -> float:
    """Multiplier of the initial learning rate during 0-based ``epoch``.

    Equals CUT's ``LambdaLR`` rule ``1 - max(0, epoch + 1 - n_epochs) / (n_epochs_decay + 1)`` (with
    ``epoch_count = 1``): 1.0 for the first ``constant_epochs`` epochs, then falling linearly so that the
    last scheduled epoch runs at ``1 / (decay_epochs + 1)``; never negative past the end of the schedule.
    """
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0 (got {epoch})")
    return max(0.0, 1.0 - max(0, epoch + 1 - constant_epochs) / (decay_epochs + 1))

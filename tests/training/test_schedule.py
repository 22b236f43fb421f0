import json

import pytest

from semst.training.loop import train
from semst.training.schedule import linear_decay_factor


def cut_lambda_rule(epoch: int, n_epochs: int, n_epochs_decay: int, epoch_count: int = 1) -> float:
    """CUT's networks.get_scheduler 'linear' rule, written out independently."""
    return 1.0 - max(0, epoch + epoch_count - n_epochs) / float(n_epochs_decay + 1)


@pytest.mark.parametrize(("constant", "decay"), [(200, 200), (150, 50), (1, 2), (0, 3)])
def test_matches_cut_linear_rule(constant, decay):
    for epoch in range(constant + decay):
        assert linear_decay_factor(epoch, constant, decay) == pytest.approx(
            cut_lambda_rule(epoch, constant, decay)
        )
    assert linear_decay_factor(0, 200, 200) == 1.0
    assert linear_decay_factor(199, 200, 200) == 1.0
    assert linear_decay_factor(200, 200, 200) == pytest.approx(200 / 201)
    assert linear_decay_factor(399, 200, 200) == pytest.approx(1 / 201)
    assert linear_decay_factor(10_000, 200, 200) == 0.0
    with pytest.raises(ValueError):
        linear_decay_factor(-1, 1, 1)


def test_training_follows_the_schedule(tmp_path, image_folders, make_config):
    source, target = image_folders  # 4 source images -> 4 steps per epoch at batch 1
    config = make_config("semst", source, target, **{"train.constant_epochs": 1, "train.decay_epochs": 2})
    train(config, tmp_path / "run", progress=False)
    records = [json.loads(line) for line in (tmp_path / "run" / "scalars.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 13))  # (1 + 2) epochs x 4 steps, then it stops
    lrs = [r["lr"] for r in records]
    assert lrs[:4] == [2e-4] * 4
    assert lrs[4:8] == pytest.approx([2e-4 * 2 / 3] * 4)
    assert lrs[8:] == pytest.approx([2e-4 / 3] * 4)
    assert [r["epoch"] for r in records] == [0] * 4 + [1] * 4 + [2] * 4

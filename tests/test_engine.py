from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dnntune.config import MetricName, Task
from dnntune.data import FoldTensors
from dnntune.engine import METRICS, evaluate, fit, resolve_metric
from dnntune.exceptions import ConfigError
from dnntune.model import PackedLinear, make_mlp


def _binary_fold(n: int = 600, seed: int = 0) -> FoldTensors:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    y = (x[:, 0] - x[:, 1] + rng.normal(scale=0.5, size=n) > 0).astype(np.int64)
    cut = n * 4 // 5
    return FoldTensors(
        torch.from_numpy(x[:cut]),
        torch.from_numpy(y[:cut].astype(np.float32).reshape(-1, 1)),
        torch.from_numpy(x[cut:]),
        y[cut:],
        Task.BINARY,
    )


def test_model_returns_logits_not_probabilities() -> None:
    model = make_mlp(d_in=4, d_out=1, num_layers=2, hidden_size=8, dropout=0.2)
    assert isinstance(model[-1], nn.Linear)
    assert not any(isinstance(m, nn.Sigmoid) for m in model.modules())
    assert sum(isinstance(m, nn.Linear) for m in model.modules()) == 3


def test_fit_learns_and_restores_best_epoch() -> None:
    torch.manual_seed(0)
    data = _binary_fold()
    model = make_mlp(d_in=5, d_out=1, num_layers=2, hidden_size=32, dropout=0.1)
    seen: list[tuple[int, float]] = []
    result = fit(
        model,
        data,
        metric=METRICS[MetricName.ROC_AUC],
        optimizer="AdamW",
        learning_rate=3e-3,
        weight_decay=0.0,
        batch_size=64,
        epochs=15,
        patience=3,
        generator=torch.Generator().manual_seed(0),
        on_epoch=lambda e, s: seen.append((e, s)),
    )
    assert result.best_score > 0.9
    assert result.best_score == max(s for _, s in seen)
    assert result.best_epoch == max(seen, key=lambda es: es[1])[0]
    # The model holds the best epoch's weights, not the last epoch's.
    assert evaluate(model, data, METRICS[MetricName.ROC_AUC]) == pytest.approx(result.best_score)


def test_on_epoch_can_stop_training() -> None:
    data = _binary_fold()
    model = make_mlp(d_in=5, d_out=1, num_layers=1, hidden_size=8)

    class Stop(Exception):
        pass

    def stop(epoch: int, score: float) -> None:
        if epoch == 2:
            raise Stop

    with pytest.raises(Stop):
        fit(
            model,
            data,
            metric=METRICS[MetricName.ROC_AUC],
            optimizer="SGD",
            learning_rate=1e-2,
            weight_decay=0.0,
            batch_size=64,
            epochs=10,
            patience=3,
            generator=torch.Generator().manual_seed(0),
            on_epoch=stop,
        )


def test_roc_auc_is_computed_on_probabilities() -> None:
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.4, 0.35, 0.8])  # thresholding at 0.5 would lose the ranking
    assert METRICS[MetricName.ROC_AUC](y, p, Task.BINARY) == pytest.approx(0.75)
    assert METRICS[MetricName.ACCURACY](y, p, Task.BINARY) == pytest.approx(0.75)


def test_metric_defaults_and_directions() -> None:
    assert resolve_metric(None, Task.BINARY).name is MetricName.ROC_AUC
    assert resolve_metric(None, Task.MULTICLASS).name is MetricName.LOGLOSS
    assert resolve_metric(None, Task.REGRESSION).direction == "minimize"
    assert resolve_metric("r2", Task.REGRESSION).direction == "maximize"
    with pytest.raises(ConfigError, match="metric 'rmse' does not apply to a binary task"):
        resolve_metric("rmse", Task.BINARY)
    with pytest.raises(ConfigError, match="unknown metric 'auc'; choose one of: roc_auc"):
        resolve_metric("auc", Task.BINARY)


def test_flat_parameters_train_exactly_like_per_layer_parameters() -> None:
    from dnntune.engine import flatten_parameters, make_optimizer

    torch.manual_seed(0)
    a = make_mlp(d_in=6, d_out=1, num_layers=2, hidden_size=16, dropout=0.0)
    b = make_mlp(d_in=6, d_out=1, num_layers=2, hidden_size=16, dropout=0.0)
    b.load_state_dict(a.state_dict())
    flat = flatten_parameters(a)
    opt_a = make_optimizer("AdamW", [flat], learning_rate=1e-2, weight_decay=0.1)
    opt_b = make_optimizer("AdamW", b.parameters(), learning_rate=1e-2, weight_decay=0.1)
    for step in range(5):
        x = torch.randn(32, 6, generator=torch.Generator().manual_seed(step))
        assert flat.grad is not None
        flat.grad.zero_()
        a(x).square().mean().backward()
        opt_a.step()
        opt_b.zero_grad()
        b(x).square().mean().backward()
        opt_b.step()
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0, msg=name)


def _train(epochs: int, lr_schedule: str, schedule_epochs: int | None = None) -> nn.Module:
    torch.manual_seed(0)
    model = make_mlp(d_in=5, d_out=1, num_layers=2, hidden_size=16, dropout=0.0)
    fit(
        model,
        _binary_fold(),
        metric=METRICS[MetricName.ROC_AUC],
        optimizer="AdamW",
        learning_rate=3e-3,
        weight_decay=0.0,
        batch_size=64,
        epochs=epochs,
        patience=epochs,  # no early stop: every run trains all its epochs
        generator=torch.Generator().manual_seed(0),
        lr_schedule=lr_schedule,
        schedule_epochs=schedule_epochs,
    )
    return model


def test_cosine_schedule_decays_over_the_stated_horizon() -> None:
    def weights(model: nn.Module) -> torch.Tensor:
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    constant = weights(_train(4, "constant"))
    cosine = weights(_train(4, "cosine"))
    assert not torch.equal(constant, cosine)
    # A refit that stops after 2 of 4 epochs follows the 4-epoch schedule's rates, so its
    # weights differ from a 2-epoch schedule (which decays to 0 by its end).
    half_of_four = weights(_train(2, "cosine", schedule_epochs=4))
    two = weights(_train(2, "cosine"))
    assert not torch.equal(half_of_four, two)
    # Its learning rate had not decayed: the last epoch moved the weights further than the
    # last epoch of the 2-epoch schedule, whose rate fell to 0.
    one = weights(_train(1, "cosine", schedule_epochs=4)), weights(_train(1, "cosine", 2))
    assert (half_of_four - one[0]).norm() > (two - one[1]).norm()
    with pytest.raises(ValueError, match="unknown lr_schedule"):
        _train(1, "linear")


def _member(packed: nn.Module, i: int) -> dict[str, torch.Tensor]:
    """Member ``i`` of a PackedMLP as a state dict of the plain MLP of the same shape (whose
    layers have the same positions)."""
    out: dict[str, torch.Tensor] = {}
    for j, block in enumerate(packed.layers):
        if isinstance(block, nn.BatchNorm1d):  # per member, then per feature
            f = block.num_features // packed.ensemble_size
            for name in ("weight", "bias", "running_mean", "running_var"):
                out[f"{j}.{name}"] = getattr(block, name)[i * f : (i + 1) * f]
            out[f"{j}.num_batches_tracked"] = block.num_batches_tracked
        elif isinstance(block, PackedLinear):
            out[f"{j}.weight"] = block.weight[i].T
            out[f"{j}.bias"] = block.bias[i]
    return out


def test_an_ensemble_trains_each_member_as_if_alone() -> None:
    data = _binary_fold()
    # No validation rows: every model keeps its last epoch's weights.
    train_only = FoldTensors(
        data.x_train, data.y_train, data.x_valid[:0], data.y_valid_eval[:0], Task.BINARY
    )
    shape = {"d_in": 5, "d_out": 1, "num_layers": 2, "hidden_size": 16, "dropout": 0.0}
    torch.manual_seed(0)
    packed = make_mlp(**shape, ensemble_size=3)
    assert "members=3" in str(packed)
    singles = []
    for i in range(3):
        single = make_mlp(**shape)
        single.load_state_dict(_member(packed, i))
        singles.append(single)
    outputs = []
    for model in (packed, *singles):
        result = fit(
            model,
            train_only,
            metric=METRICS[MetricName.ROC_AUC],
            optimizer="SGD",  # not scale-free: a member's gradient must be its own loss's
            learning_rate=0.05,
            weight_decay=0.0,
            batch_size=64,
            epochs=3,
            patience=3,
            generator=torch.Generator().manual_seed(0),  # the same batches for all
        )
        assert result.epochs_run == 3
        outputs.append(model.eval()(data.x_valid))
    # Each member ends where the same network trained alone ends (its weights and its
    # BatchNorm statistics), the members differ, and the ensemble predicts their mean.
    for i, single in enumerate(singles):
        for name, value in single.state_dict().items():
            torch.testing.assert_close(_member(packed, i)[name], value, msg=name)
    assert not torch.allclose(outputs[1], outputs[2])
    torch.testing.assert_close(outputs[0], torch.stack(outputs[1:]).mean(0))

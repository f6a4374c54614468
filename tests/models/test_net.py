"""The HAR-correcting network (models.net): it starts exactly at HAR, learns what HAR cannot see, stops early at its
best epoch, is deterministic, causal, pickles, and reports its out-of-sample QLIKE against its HAR offset.

Two data sets: the session's ``small_data`` (21 simulated days, horizons 60 and 240) and a synthetic market where
the variance of each 60-bar block is ``exp(z)`` with z i.i.d. N(0, 1), announced by a ``news`` feature one bar
before the block starts: past realized variance (all HAR sees) carries no information about it, the news carries
all of it, so a net that learns anything must beat HAR by far.
"""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from models.base import QUANTILES, ModelData, ModelError
from models.baselines import Har
from models.net import NetForecaster
from models.registry import make_model

BLOCK = 60
OOS_MARGIN = 0.10  # on small_data the net may be at most 10% worse than its HAR offset in QLIKE (it is ≈ equal)


def qlike(rv: np.ndarray, var: np.ndarray) -> float:
    """mean(rv/var − log(rv/var) − 1), rv floored at 1e-12 (DESIGN section 6), written out independently."""
    ratio = np.maximum(rv, 1e-12) / var
    return float(np.mean(ratio - np.log(ratio) - 1.0))


def synthetic(n_blocks: int, n_noise: int, seed: int = 0) -> tuple[ModelData, np.ndarray]:
    """(data, origins): 1-minute bars, blocks of 60 bars with variance 1e-6·exp(z_b); features ``rv_60`` (the
    trailing 60-bar sum of r²), ``news`` (z of the block starting at the next bar) and ``n_noise`` N(0, 1) columns;
    target ``rv_h60``. Origins: the last bar of each block, from the second block on (rv_60 known)."""
    rng = np.random.default_rng(seed)
    n = n_blocks * BLOCK
    z = rng.normal(size=n_blocks)
    r = rng.normal(size=n) * 1e-3 * np.exp(0.5 * z).repeat(BLOCK)
    r[0] = np.nan
    cum = np.concatenate([[0.0], np.cumsum(np.nan_to_num(r * r))])  # cum[i] = Σ r² of rows < i
    t = np.arange(n)
    rv_back = np.where(t >= BLOCK, cum[t + 1] - cum[np.maximum(t + 1 - BLOCK, 0)], np.nan)
    rv_ahead = np.where(t + BLOCK < n, cum[np.minimum(t + 1 + BLOCK, n)] - cum[t + 1], np.nan)
    following = (t + 1) // BLOCK
    news = np.where(following < n_blocks, z[np.minimum(following, n_blocks - 1)], np.nan)
    index = pd.date_range("2026-01-05", periods=n, freq="1min", tz="UTC", name="timestamp")
    columns = {"rv_60": rv_back, "news": news} | {f"noise_{k}": rng.normal(size=n) for k in range(n_noise)}
    data = ModelData(
        features=pd.DataFrame(columns, index=index),
        log_return=r,
        bar_years=1 / 525_600,
        horizons=(BLOCK,),
        targets=pd.DataFrame({f"rv_h{BLOCK}": rv_ahead}, index=index),
    )
    return data, np.arange(2 * BLOCK - 1, n - BLOCK, BLOCK)


@pytest.fixture(scope="module")
def trained(small_data, small_split):
    """4 epochs without early stopping (the last weights kept), so the net has moved away from HAR."""
    train, _ = small_split
    return NetForecaster(validation_fraction=0.0, max_epochs=4, seed=0).fit(small_data, train)


@pytest.fixture(scope="module")
def default_net(small_data, small_split):
    return NetForecaster(seed=0).fit(small_data, small_split[0])


def test_the_untrained_net_forecasts_exactly_the_har_offset(small_data, small_split):
    train, test = small_split
    net = NetForecaster(max_epochs=0).fit(small_data, train)
    har = Har(log=True, exog_iv=True).fit(small_data, train)
    ours, theirs = net.predict(small_data, test), har.predict(small_data, test)
    np.testing.assert_allclose(ours["var"], theirs["var"], rtol=1e-12, atol=0)
    assert net.best_epoch_ == 0 and [r["epoch"] for r in net.history_] == [0]
    # the native quantiles start at HAR times the training residual quantiles: the median near HAR
    ratio = ours["q50"].to_numpy() / ours["var"].to_numpy()
    assert np.all((ratio > 0.5) & (ratio < 1.0))  # log-normal-like residuals: the median is below the mean


def test_the_untrained_net_with_range_measures_forecasts_exactly_that_har(small_data, small_split):
    train, test = small_split
    net = NetForecaster(max_epochs=0, base_measures=["rv", "gk"], seasonal=True).fit(small_data, train)
    har = Har(log=True, exog_iv=True, measures=["rv", "gk"], seasonal=True).fit(small_data, train)
    assert net.har_.columns_ == har.columns_ and "gk_60" in har.columns_
    ours, theirs = net.predict(small_data, test), har.predict(small_data, test)
    np.testing.assert_allclose(ours["var"], theirs["var"], rtol=1e-12, atol=0)
    with pytest.raises(ModelError, match="parameter base_measures must be None"):
        NetForecaster(base_measures=["garch"]).fit(small_data, train)


def test_training_lowers_the_validation_loss_and_learns_what_har_cannot_see():
    data, origins = synthetic(n_blocks=260, n_noise=5, seed=1)
    train, test = origins[:200], origins[200:]
    net = NetForecaster(lookback=2, lr=1e-2, batch_size=32, max_epochs=40, seed=0).fit(data, train)
    val = [r["val_loss"] for r in net.history_]
    assert min(val) < 0.5 * val[0]
    assert net.best_epoch_ > 0
    rv = data.target(BLOCK)[test]
    var = net.predict(data, test)["var"].to_numpy()
    har = net.offset_var(data, test)[BLOCK]
    assert qlike(rv, var) < 0.3 * qlike(rv, har)


def test_early_stopping_restores_the_best_epoch():
    data, origins = synthetic(n_blocks=120, n_noise=100, seed=0)  # 100 noise columns, ≈ 90 fit rows: it overfits
    net = NetForecaster(
        lookback=1, lr=1e-2, batch_size=16, dropout=0.0, weight_decay=0.0, patience=3, max_epochs=100, seed=0
    ).fit(data, origins)
    val = np.array([r["val_loss"] for r in net.history_])
    best = int(np.argmin(val))
    assert net.best_epoch_ == best and 0 < best < val.size - 1  # it learned, then got worse
    assert net.history_[-1]["epoch"] == best + net.patience  # stopped after `patience` epochs without progress
    assert val[-1] > val[best] * 1.01
    restored = net.evaluate_loss(data, net.validation_rows_)["total"]
    assert restored == pytest.approx(val[best], rel=1e-5)
    # the validation origins are the last 20%; the fit origins end a horizon before them (purged)
    assert net.validation_rows_.size == round(0.2 * origins.size)
    assert net.fit_rows_[-1] + BLOCK <= net.validation_rows_[0]


def test_the_epoch_callback_sees_every_epoch_and_can_stop_the_fit():
    data, origins = synthetic(n_blocks=80, n_noise=2)
    seen = []
    net = NetForecaster(lookback=1, max_epochs=3, patience=10)
    net.epoch_callback = lambda epoch, loss: seen.append((epoch, loss))
    net.fit(data, origins)
    assert [e for e, _ in seen] == [1, 2, 3]
    assert [loss for _, loss in seen] == [r["val_loss"] for r in net.history_[1:]]

    class Pruned(Exception):
        pass

    def prune(epoch: int, loss: float) -> None:
        if epoch == 2:
            raise Pruned

    fresh = NetForecaster(lookback=1, max_epochs=5)
    fresh.epoch_callback = prune
    with pytest.raises(Pruned):
        fresh.fit(data, origins)
    with pytest.raises(ModelError, match="not fitted"):
        fresh.predict(data, origins)
    assert "epoch_callback" not in fresh.clone().__dict__ and "epoch_callback" not in fresh.get_params()


def test_same_seed_same_forecasts_and_torch_settings_restored(trained, small_data, small_split):
    train, test = small_split
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    rng_state = torch.random.get_rng_state()
    again = NetForecaster(validation_fraction=0.0, max_epochs=4, seed=0).fit(small_data, train)
    pd.testing.assert_frame_equal(again.predict(small_data, test), trained.predict(small_data, test))
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == deterministic
    assert torch.equal(torch.random.get_rng_state(), rng_state)  # the seeding does not touch the global RNG


def test_native_quantiles_are_monotone_and_regime_probabilities_sum_to_one(trained, small_data, small_split):
    test = small_split[1]
    var = trained._predict_var(small_data, test)
    quantiles = trained._predict_quantiles(small_data, test, var)
    regimes = trained._predict_regimes(small_data, test, var)
    frame = trained.predict(small_data, test)
    for h in small_data.horizons:
        q, p = quantiles[h], regimes[h]
        assert q.shape == (test.size, len(QUANTILES)) and np.all(np.diff(q, axis=1) >= 0)
        assert np.all(q > 0) and not np.allclose(q[:, 0], q[:, -1])
        np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=0, atol=1e-12)
        assert np.all((p >= 0) & (p <= 1))
        rows = frame["horizon"] == h
        np.testing.assert_array_equal(frame.loc[rows, ["q05", "q25", "q50", "q75", "q95"]].to_numpy(), q)
        # the trained net departs from HAR
        assert not np.allclose(var[h], trained.offset_var(small_data, test)[h], rtol=1e-6)


def test_garbage_after_the_last_test_origin_changes_nothing(trained, small_data, small_split):
    test = small_split[1]
    last = int(test[-1])
    rng = np.random.default_rng(3)
    features = small_data.features.copy()
    tail = features.iloc[last + 1 :]
    features.iloc[last + 1 :] = rng.normal(scale=1e3, size=tail.shape) * np.where(
        rng.random(tail.shape) < 0.1, np.nan, 1
    )
    log_return = small_data.log_return.copy()
    log_return[last + 1 :] = 1.0
    iv = small_data.iv.copy()
    iv[last + 1 :] = 99.0
    targets = small_data.targets.copy()
    targets.iloc[last + 1 :] = -1.0
    garbage = dataclasses.replace(small_data, features=features, log_return=log_return, iv=iv, targets=targets)
    pd.testing.assert_frame_equal(trained.predict(garbage, test), trained.predict(small_data, test))


def test_pickle_round_trip_predicts_identically(trained, small_data, small_split):
    test = small_split[1]
    assert all(isinstance(v, np.ndarray) for v in trained.weights_.values())  # CPU arrays, no tensors
    trained.epoch_callback = lambda epoch, loss: None  # not picklable state: left out
    try:
        restored = pickle.loads(pickle.dumps(trained))
    finally:
        del trained.epoch_callback
    assert "epoch_callback" not in restored.__dict__
    pd.testing.assert_frame_equal(restored.predict(small_data, test), trained.predict(small_data, test))


def test_cuda_without_cuda_and_bad_parameters_are_model_errors(small_data, small_split, monkeypatch):
    train = small_split[0]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ModelError, match=r"device='cuda'.*Fix: device='auto'"):
        NetForecaster(device="cuda").fit(small_data, train)
    with pytest.raises(ModelError, match=r"parameter lookback must be a whole number ≥ 1; got 0"):
        NetForecaster(lookback=0).fit(small_data, train)
    with pytest.raises(ModelError, match=r"validation_fraction"):
        NetForecaster(validation_fraction=1.0).fit(small_data, train)
    with pytest.raises(ModelError, match=r"\['nope'\] match no column of the feature table"):
        NetForecaster(features=["rv_60", "nope"]).fit(small_data, train)
    model = make_model("fast_net", {"family": "net", "hidden": 8, "lookback": 2})
    assert isinstance(model, NetForecaster) and model.label == "fast_net"
    assert model.clone().get_params() == model.get_params()


def test_out_of_sample_qlike_against_the_har_offset(default_net, small_data, small_split):
    test = small_split[1]
    frame = default_net.predict(small_data, test)
    offset = default_net.offset_var(small_data, test)
    for h in small_data.horizons:
        rv = small_data.target(h)[test]
        net_loss = qlike(rv, frame.loc[frame["horizon"] == h, "var"].to_numpy())
        har_loss = qlike(rv, offset[h])
        epoch = default_net.best_epoch_
        print(f"\nsmall_data h={h}: QLIKE net {net_loss:.4f}, HAR offset {har_loss:.4f} (best epoch {epoch})")
        assert np.isfinite(net_loss) and net_loss <= (1 + OOS_MARGIN) * har_loss

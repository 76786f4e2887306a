"""Training metrics read from real-looking log lines of each framework, and never from junk."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runctl_tui.logs.metrics import (
    History,
    MetricsSample,
    MetricsSeries,
    normalise_name,
    parse_metrics,
)


def parsed(line: str) -> MetricsSample:
    sample = parse_metrics(line)
    assert sample is not None, line
    return sample


def test_hugging_face_trainer_log_dict() -> None:
    sample = parsed("{'loss': 0.41, 'grad_norm': 1.2, 'learning_rate': 2e-05, 'epoch': 0.3}")
    assert (sample.loss, sample.grad_norm, sample.lr, sample.epoch) == (0.41, 1.2, 2e-05, 0.3)
    assert sample.step is None
    assert sample.extra == ()


def test_hugging_face_trainer_eval_dict() -> None:
    sample = parsed(
        "{'eval_loss': 0.3512, 'eval_runtime': 12.31, 'eval_samples_per_second': 81.2, "
        "'eval_steps_per_second': 10.15, 'epoch': 1.0}"
    )
    assert sample.eval_loss == 0.3512
    assert sample.loss is None
    assert sample.epoch == 1.0
    # Evaluation throughput is not training throughput.
    assert sample.samples_per_s is None
    assert dict(sample.extra)["eval_samples_per_second"] == 81.2


def test_hugging_face_trainer_summary_and_total() -> None:
    summary = parsed(
        "{'train_runtime': 1834.2, 'train_samples_per_second': 26.1, "
        "'train_steps_per_second': 1.63, 'train_loss': 0.5127, 'epoch': 3.0}"
    )
    assert (summary.loss, summary.samples_per_s, summary.it_per_s) == (0.5127, 26.1, 1.63)
    assert parsed("  Total optimization steps = 3,000").total_steps == 3000


def test_hugging_face_numpy_scalars_and_nan() -> None:
    sample = parsed("{'loss': nan, 'grad_norm': inf, 'learning_rate': np.float64(1e-05)}")
    assert sample.loss is not None
    assert math.isnan(sample.loss)
    assert sample.grad_norm == math.inf
    assert sample.lr == 1e-05


def test_lightning_progress_bar() -> None:
    line = "Epoch 3:  45%|████▌     | 450/1000 [01:23<01:42,  5.41it/s, loss=0.512, v_num=0]"
    sample = parsed(line)
    assert (sample.epoch, sample.step, sample.total_steps) == (3.0, 450, 1000)
    assert (sample.loss, sample.it_per_s, sample.eta) == (0.512, 5.41, 102.0)
    assert dict(sample.extra) == {"v_num": 0.0}


def test_lightning_step_metrics_are_the_loss() -> None:
    line = (
        "Epoch 0:  12%|█▏        | 12/100 [00:03<00:22,  3.90it/s, v_num=2, "
        "train_loss_step=2.310, val_loss=2.410]"
    )
    sample = parsed(line)
    assert (sample.loss, sample.eval_loss) == (2.31, 2.41)


def test_tqdm_bare_and_redrawn_with_colours() -> None:
    assert parsed("12/100 [00:03<00:22, 3.9it/s]").step == 12
    redrawn = (
        "\x1b[32m 10%|█         | 10/100 [00:01<00:09,  9.80it/s]\x1b[0m"
        "\r 11%|█         | 11/100 [00:01<00:09,  9.80it/s]"
    )
    sample = parsed(redrawn)
    assert (sample.step, sample.total_steps, sample.eta) == (11, 100, 9.0)
    slow = parsed(" 50%|█████     | 2/4 [00:05<00:05,  2.50s/it]")
    assert slow.it_per_s == pytest.approx(0.4)
    assert parsed("450it [01:23, 5.41it/s]").step == 450
    assert parsed("  5%|▌         | 50/1000 [00:10<1:03:10,  5.00it/s]").eta == 3790.0


@pytest.mark.parametrize(
    "line",
    [
        "Map: 100%|██████████| 1000/1000 [00:01<00:00, 900.00 examples/s]",
        "Loading checkpoint shards: 100%|██████████| 4/4 [00:05<00:00,  1.25s/it]",
        "Downloading shards: 100%|██████████| 2/2 [00:31<00:00, 15.6s/it]",
        "Validation DataLoader 0:  40%|████      | 20/50 [00:02<00:03,  9.1it/s]",
    ],
)
def test_bars_of_other_work_are_not_training(line: str) -> None:
    assert parse_metrics(line) is None


@pytest.mark.parametrize(
    ("line", "step", "loss", "lr"),
    [
        ("step 1200 | loss 0.41 | lr 3e-4", 1200, 0.41, 3e-4),
        ("step=1200 loss=0.41", 1200, 0.41, None),
        ("step: 1200, loss: 0.410, lr: 0.0003", 1200, 0.41, 3e-4),
        ('{"step": 10, "loss": 0.3, "lr": 1e-4}', 10, 0.3, 1e-4),
        ('{"train/global_step": 10, "train/loss": 0.3}', 10, 0.3, None),
        ("2024-05-01 12:00:03,123 INFO step=5 loss=2.71 lr-AdamW=1e-3", 5, 2.71, 1e-3),
        ("iter 100/5000 loss 2.31 | 45000 tok/s | eta 0:12:34", 100, 2.31, None),
    ],
)
def test_key_value_lines(line: str, step: int, loss: float, lr: float | None) -> None:
    sample = parsed(line)
    assert (sample.step, sample.loss, sample.lr) == (step, loss, lr)


def test_key_value_extras_throughput_and_eta() -> None:
    sample = parsed("iter 100/5000 loss 2.31 | 45000 tok/s | 312.5 samples/s | eta 0:12:34")
    assert (sample.total_steps, sample.tokens_per_s, sample.samples_per_s) == (5000, 45000, 312.5)
    assert sample.eta == 754.0
    assert parsed("step=3 loss=1.0 eta=1h02m").eta == 3720.0
    assert parsed("step=3 loss=1.0 ETA: 2 days, 1:00:00").eta == 2 * 86400 + 3600.0


def test_tutorial_and_keras_styles() -> None:
    tutorial = parsed("Epoch [1/10], Step [100/600], Loss: 0.2134")
    assert (tutorial.epoch, tutorial.total_epochs, tutorial.step, tutorial.total_steps) == (
        1.0,
        10,
        100,
        600,
    )
    keras = parsed(
        "250/250 [==============================] - 5s 20ms/step - loss: 0.4123 "
        "- accuracy: 0.8512 - val_loss: 0.4501"
    )
    assert (keras.loss, keras.eval_loss, keras.it_per_s) == (0.4123, 0.4501, 50.0)
    assert dict(keras.extra)["accuracy"] == 0.8512


def test_nan_and_inf_kept() -> None:
    nan_loss = parsed("loss: nan").loss
    assert nan_loss is not None
    assert math.isnan(nan_loss)
    assert parsed("step=7 loss=-inf").loss == -math.inf
    assert parsed('{"loss": Infinity}').loss == math.inf


@pytest.mark.parametrize(
    "line",
    [
        "Step 1: install the dependencies",
        "Epoch 3 starting",
        "eval_error_rate=0.1",
        "connected to 10.0.0.1:22 port 22",
        "2024-05-01 12:00:03 INFO loading model v1.2.3",
        "loss=0.41abc lr=fast",
        "step 12:30 loss=NaNa",
        "INFO starting inference on 3 files",
        "",
        "\x1b[2J\x1b]0;title\x07",
    ],
)
def test_prose_gives_no_metrics(line: str) -> None:
    assert parse_metrics(line) is None


@pytest.mark.parametrize(
    ("name", "normal"),
    [
        ("loss", "loss"),
        ("train_loss", "loss"),
        ("train/loss", "loss"),
        ("Train Loss", "loss"),
        ("learning_rate", "lr"),
        ("lr", "lr"),
        ("lr-AdamW", "lr"),
        ("val/loss", "eval_loss"),
        ("eval_loss", "eval_loss"),
        ("global_step", "step"),
        ("train_samples_per_second", "samples_per_s"),
        ("tokens/s", "tokens_per_s"),
        ("eval_error_rate", "eval_error_rate"),
        ("weird<name>", "weird_name"),
    ],
)
def test_names_are_normalised(name: str, normal: str) -> None:
    assert normalise_name(name) == normal


def test_long_line_is_capped() -> None:
    assert parsed("loss=0.5 " + "x" * 10_000_000).loss == 0.5


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_no_line_raises(line: str) -> None:
    sample = parse_metrics(line)
    if sample is not None:
        assert all(isinstance(v, float) for v in sample.values().values())
        assert all(name.replace("_", "").isalnum() for name, _ in sample.extra)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=["Nd"])))
def test_text_without_digits_gives_at_most_nan_or_inf(line: str) -> None:
    sample = parse_metrics(line)
    if sample is not None:
        assert not any(math.isfinite(v) for v in sample.values().values())


_KEYS = st.sampled_from(["loss", "lr", "step", "epoch", "grad_norm", "eval_loss", "my_metric"])
_NOT_NUMBER = st.text(
    alphabet=st.characters(exclude_categories=["Nd", "Cs"], exclude_characters="nNiI"),
    min_size=1,
)


@settings(max_examples=300, deadline=None)
@given(_KEYS, st.sampled_from(["=", ": ", " ", "': '"]), _NOT_NUMBER)
def test_a_non_number_never_becomes_a_value(key: str, sep: str, junk: str) -> None:
    sample = parse_metrics(f"{key}{sep}{junk}")
    if sample is not None:
        assert normalise_name(key) not in sample.values()


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["loss", "eval_loss", "learning_rate", "grad_norm"]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["{'%s': %r}", '{"%s": %r}', "%s=%r", "%s: %r", "step 1 | %s %r"]),
)
def test_any_float_reads_back(key: str, value: float, template: str) -> None:
    sample = parsed(template % (key, value))
    got = sample.values()[normalise_name(key)]
    assert got == value or (math.isnan(got) and math.isnan(value))


def test_series_latest_progress_and_history() -> None:
    now = [100.0]
    series = MetricsSeries(clock=lambda: now[0])
    series.feed("  Total optimization steps = 1,000")
    for step in range(1, 11):
        now[0] += 2.0
        series.feed(f"{{'loss': {3.0 - step / 10}, 'learning_rate': 1e-05, 'step': {step}}}")
    assert series.history("loss")[0] == 2.9
    assert series.history("loss")[-1] == 2.0
    assert series.latest["lr"] == 1e-05
    assert series.progress == pytest.approx(0.01)
    # Nine steps in 18 s: 990 left at 0.5 steps/s.
    assert series.eta() == pytest.approx(1980.0)
    now[0] += 10.0
    assert series.eta() == pytest.approx(1970.0)
    assert series.feed("nothing here") is None
    assert dict(series)["loss"] == 2.0


def test_series_prefers_the_reported_eta_and_restarts_rate_per_epoch() -> None:
    now = [0.0]
    series = MetricsSeries(clock=lambda: now[0])
    series.feed("Epoch 0:  90%|█████████ | 90/100 [00:09<00:01, 10.0it/s, loss=1.0]")
    now[0] = 0.5
    assert series.eta() == pytest.approx(0.5)
    series.feed("Epoch 1:   1%|          | 1/100 [00:00<?, ?it/s, loss=0.9]")
    assert series.step == 1
    assert series.epoch == 1.0
    assert series.eta() is None


def test_history_stays_bounded_and_keeps_the_shape() -> None:
    history = History(capacity=64)
    for i in range(10_000):
        history.append(float(i), float(i))
    values = history.values()
    assert len(values) <= 65
    assert values == sorted(values)
    assert values[0] < 200
    assert values[-1] > 9_000
    assert history.count == 10_000


def test_history_keeps_nan_when_nothing_finite() -> None:
    history = History(capacity=4)
    for value in (1.0, math.nan, math.nan, math.nan, math.nan, 2.0):
        history.append(0.0, value)
    values = history.values()
    assert any(math.isnan(v) for v in values)
    assert len(values) <= 5


def test_a_rate_named_with_its_value_after_it_is_a_name() -> None:
    sample = parsed("step=12 loss=0.25 lr=3.0e-04 tokens/s=51234")
    assert (sample.lr, sample.tokens_per_s) == (3.0e-04, 51234.0)
    assert parsed("loss 0.5, 3.0 tokens/s").tokens_per_s == 3.0


def test_lines_of_one_shape_with_other_numbers_read_their_own_numbers() -> None:
    for n in (1, 22, 333, 4444):
        sample = parsed(f"step={n} loss=0.{n} grad_norm={n}.5 my_metric={n}")
        assert (sample.step, sample.loss, sample.grad_norm) == (n, float(f"0.{n}"), n + 0.5)
        assert sample.extra == (("my_metric", float(n)),)


def test_take_adds_what_feed_adds_and_latest_stays_bounded() -> None:
    from runctl_tui.logs.metrics import MAX_LATEST, MetricsSeries

    fed, taken = MetricsSeries(clock=lambda: 1.0), MetricsSeries(clock=lambda: 1.0)
    lines = [f"step={n} loss={1 / (n + 1)} worker_{n}_ms={n}" for n in range(MAX_LATEST * 2)]
    for line in lines:
        fed.feed(line)
        assert taken.take(line)
    assert not taken.take("nothing here")
    assert fed.latest == taken.latest
    assert len(taken.latest) == MAX_LATEST
    assert taken.latest["step"] == MAX_LATEST * 2 - 1
    assert fed.history("loss") == taken.history("loss")


def test_a_sample_without_a_step_is_drawn_at_the_last_step_seen() -> None:
    series = MetricsSeries()
    series.feed("{'loss': 2.5, 'epoch': 0.01}")
    series.feed("step 10/100 | loss 2.0")
    series.feed("{'loss': 1.9, 'epoch': 0.1}")
    series.feed("step 20/100 | loss 1.5")
    assert series.histories["loss"].points() == [(1.0, 2.5), (10.0, 2.0), (10.0, 1.9), (20.0, 1.5)]

"""The AWD-LSTM switches (generator/regularize.py, ModelConfig, TrainConfig.ema_decay) at tiny
sizes: each acts in training only, does what its name says, and saves, loads and samples."""

from __future__ import annotations

import pytest
import torch

from common.cli import UserError
from common.corpus import format_posts
from generator import modeldir, regularize
from generator.evaluate import stream_bits
from generator.model import FastLSTM, LSTMModel, ModelConfig
from generator.plan import sizes_of
from generator.tokenizer import CharVocab
from generator.train import Streams, TrainConfig, Trainer

torch.set_num_threads(1)  # tiny models: threads only add sync cost on a shared 2-core machine
TINY = dict(vocab_size=6, embed=4, hidden=5, layers=2, dropout=0.0)  # N,T,D,H,V = 2,3,4,5,6
SWITCHES = {"weight_drop": 0.5, "locked_dropout": 0.5, "embed_dropout": 0.5}


def _model(**config) -> LSTMModel:
    torch.manual_seed(0)  # the switches do not change the initialisation: equal weights
    return LSTMModel(ModelConfig(**{**TINY, **config}))


@pytest.mark.parametrize("switch", SWITCHES)
def test_each_switch_changes_training_outputs_and_leaves_eval_deterministic(switch):
    plain, switched = _model(), _model(**{switch: SWITCHES[switch]})
    x = torch.randint(0, 6, (2, 3))
    reference = plain(x)[0]  # dropout 0: the plain model's training output is deterministic
    first, second = switched(x)[0], switched(x)[0]
    assert not torch.allclose(first, reference) and not torch.allclose(first, second)
    plain.eval()
    switched.eval()
    logits, state = switched(x)
    assert torch.equal(logits, switched(x)[0]) and torch.equal(logits, plain(x)[0])
    assert all(torch.equal(a, b) for a, b in zip(state, plain(x)[1], strict=True))


def test_weight_drop_masks_only_w_hh_with_one_mask_per_window():
    p = 0.5
    model = _model(hidden=16, weight_drop=p)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randint(0, 6, (4, 8))  # 8 steps: a fresh mask per step would leave ~0.5^7 zeros
    logits, _ = model(x)
    logits.square().sum().backward()  # a loss that reaches every weight
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # no in-place
    masked = _model(hidden=16).eval()
    for layer in range(2):
        grad_hh = getattr(model.lstm, f"weight_hh_l{layer}").grad  # (4H, H): 0 where dropped
        assert 0.35 < (grad_hh == 0).float().mean() < 0.65
        assert (getattr(model.lstm, f"weight_ih_l{layer}").grad != 0).all()
        with torch.no_grad():  # the window's mask, read off the gradient, applied by hand
            getattr(masked.lstm, f"weight_hh_l{layer}").mul_((grad_hh != 0) / (1 - p))
    torch.testing.assert_close(masked(x)[0], logits)  # W_hh masked, nothing else, every step
    model.zero_grad()
    model.eval()
    model(x)[0].square().sum().backward()
    assert (model.lstm.weight_hh_l1.grad != 0).all()  # evaluation drops nothing


def test_locked_dropout_uses_one_mask_across_time(monkeypatch):
    out = regularize.locked_dropout(torch.ones(2, 7, 3), 0.5)
    assert torch.equal(out, out[:, :1].expand_as(out))  # (N, 1, C) mask over all 7 steps
    assert set(out.unique().tolist()) <= {0.0, 2.0}
    rows = regularize.embedding_dropout(torch.ones(6, 4), 0.5)  # whole tokens, scaled
    assert torch.equal(rows, rows[:, :1].expand_as(rows)) and set(rows.unique().tolist()) <= {0, 2}
    calls = []

    def spy(x, p):
        y = original(x, p)
        calls.append((x, y))
        return y

    original = regularize.locked_dropout
    monkeypatch.setattr(regularize, "locked_dropout", spy)
    # dropout 0.9 would zero most of each step's units afresh: locked dropout replaces it
    model = _model(layers=3, dropout=0.9, locked_dropout=0.5)
    model(torch.randint(0, 6, (2, 4)))
    assert len(calls) == 3  # inputs of layers 1 and 2, and the output
    for x, y in calls:
        ratio = y / x  # (N, T, H): the mask; LSTM states are never exactly 0
        assert torch.equal(ratio, ratio[:, :1].expand_as(ratio))


@pytest.mark.parametrize("embed", [5, 4, None], ids=["tied", "tied+projected", "untied"])
def test_tied_weights_share_storage_and_the_fast_cell_matches(tmp_path, embed):
    tied = embed is not None
    model = _model(embed=embed or 4, tie_weights=tied, dropout=0.1)
    assert (model.head.weight is model.embed.weight) == tied
    assert (model.proj is not None) == (embed == 4)
    x = torch.randint(0, 6, (2, 3))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(x)[0].sum().backward()
    optimizer.step()
    modeldir.save_model(tmp_path, model, "АБВГ", info={})
    loaded, _, _ = modeldir.load_model(tmp_path)
    for m in (model, loaded):
        assert (m.head.weight.data_ptr() == m.embed.weight.data_ptr()) == tied
    logits = loaded(x)[0].detach()
    assert torch.equal(logits, model.eval()(x)[0])
    for int8, tolerance in ((False, 1e-5), (True, 2e-2)):  # int8: quantized matrix products
        cell = FastLSTM(loaded, int8=int8)
        state = cell.zero_state(2)
        steps = torch.stack([cell.step(x[:, t], state) for t in range(3)], 1)
        torch.testing.assert_close(steps, logits, atol=tolerance, rtol=tolerance)


def test_an_old_model_config_without_the_new_keys_still_loads(tmp_path):
    model = _model().eval()
    modeldir.save_model(tmp_path, model, "АБВГ", info={})
    path = tmp_path / modeldir.MODEL_FILE
    payload = torch.load(path, weights_only=True)
    old_keys = ("vocab_size", "embed", "hidden", "layers", "dropout")  # before the AWD switches
    payload["model_config"] = {k: payload["model_config"][k] for k in old_keys}
    torch.save(payload, path)
    loaded, _, _ = modeldir.load_model(tmp_path)
    assert loaded.config == model.config  # every switch off
    x = torch.randint(0, 6, (2, 3))
    assert torch.equal(loaded(x)[0], model(x)[0])
    # a warm start from it may change the regularisers, not the shape
    source = {"model_config": payload["model_config"]}
    sizes = sizes_of(source, {"weight_drop": 0.3}, "old")
    assert sizes["weight_drop"] == 0.3 and sizes["tie_weights"] is False
    with pytest.raises(UserError, match="--tie-weights True differs from the False"):
        sizes_of(source, {"tie_weights": True}, "old")


def test_ema_weights_are_validated_and_saved(tmp_path):
    posts = ["КОТ\n@\nПЕС", "ДОМ\n@\nЛЕС"] * 20
    vocab = CharVocab.build(posts)
    val = vocab.encode_posts(posts[-2:])
    streams = Streams(vocab.encode_posts(posts), val, len(format_posts(posts)),
                      len(format_posts(posts[-2:])), vocab.chars)
    cfg = TrainConfig(batch_size=2, seq_len=16, lr=1e-2, warmup_steps=1, max_steps=1,
                      eval_every=1, ema_decay=0.999, bf16=False)
    model_cfg = ModelConfig(vocab_size=len(vocab), embed=8, hidden=16, layers=1)
    trainer = Trainer(cfg, model_cfg, streams, tmp_path, torch.device("cpu"))
    start = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.run()
    trained = trainer.model.state_dict()
    saved = modeldir.read_model(tmp_path)
    checkpoint = modeldir.load_checkpoint(tmp_path)
    for name, weight in saved["model"].items():
        # after step 0 the warmed-up decay is min(0.999, 1 / 10): 0.1·start + 0.9·trained
        torch.testing.assert_close(weight, 0.1 * start[name] + 0.9 * trained[name])
        assert torch.equal(checkpoint["ema"][name], weight)
        assert torch.equal(checkpoint["model"][name], trained[name])
    model, _, info = modeldir.load_model(tmp_path)
    assert info["val_bpc"] == pytest.approx(stream_bits(model, val) / streams.val_chars, rel=1e-6)


@pytest.mark.parametrize("tied", [True, False])
def test_depth_groups_hold_every_parameter_once_from_the_output_down(tied):
    model = LSTMModel(ModelConfig(vocab_size=6, embed=4, hidden=5, layers=2, tie_weights=tied))
    groups = model.depth_groups()
    flat = [id(p) for g in groups for p in g]
    assert sorted(flat) == sorted(id(p) for p in model.parameters())  # each once
    def depth(p):
        return next(d for d, g in enumerate(groups) if any(p is q for q in g))
    assert depth(model.head.weight) == 0 and depth(model.lstm.weight_hh_l1) == 1
    assert depth(model.lstm.weight_ih_l0) == 2 and len(groups) == (3 if tied else 4)
    assert depth(model.embed.weight) == (0 if tied else 3)


def test_layer_lr_decay_gives_each_depth_its_share_of_the_lr(tmp_path):
    posts = ["КОТ\n@\nПЕС", "ДОМ\n@\nЛЕС"] * 20
    vocab = CharVocab.build(posts)
    streams = Streams(vocab.encode_posts(posts), vocab.encode_posts(posts[-2:]),
                      len(format_posts(posts)), len(format_posts(posts[-2:])), vocab.chars)
    cfg = TrainConfig(batch_size=2, seq_len=16, lr=1e-2, warmup_steps=1, max_steps=2,
                      eval_every=2, layer_lr_decay=0.5, bf16=False, min_lr_ratio=1.0)
    model_cfg = ModelConfig(vocab_size=len(vocab), embed=4, hidden=5, layers=2)
    trainer = Trainer(cfg, model_cfg, streams, tmp_path, torch.device("cpu"))
    bottom = trainer.model.embed.weight.detach().clone()
    trainer.run()
    assert [g["lr"] for g in trainer.optimizer.param_groups] == pytest.approx(
        [1e-2, 5e-3, 2.5e-3, 1.25e-3])
    assert not torch.equal(trainer.model.embed.weight, bottom)  # the lowest group still learns

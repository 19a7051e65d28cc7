"""Generator: model, trainer, checkpoints, sampling, gate, eval, DDP — at tiny sizes, offline."""

from __future__ import annotations

import datetime
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from common.atomic import write_text_atomic
from common.cli import UserError
from common.config import BUNDLED_MODEL_DIR
from common.corpus import format_posts, read_split, split_posts, write_corpus
from generator import gate, modeldir, result
from generator.data import StreamBatches
from generator.evaluate import stream_bits, text_bpc
from generator.model import FastLSTM, LSTMModel, ModelConfig
from generator.modeldir import load_model, save_model
from generator.novelty import NoveltyIndex
from generator.sample import Generator
from generator.tag import finish
from generator.tokenizer import END, UNK, CharVocab
from generator.train import (
    BATCH_BY_DEVICE,
    WARM_START_LR,
    Streams,
    TrainConfig,
    Trainer,
    batch_loss,
)
from harness.paths import REPO

torch.set_num_threads(1)  # tiny models: threads only add sync cost on a shared 2-core machine
TINY = dict(embed=4, hidden=5, layers=2)  # torch-rnn style sizes: N,T,D,H,V = 2,3,4,5,6
WORDS = "КОТ ПЕС ДОМ ЛЕС ЧАЙ СОК ДЫМ МЕЛ ЛУК РОТ НОС ГОЛ ПАР ЖАР СЫР".split()


def bugurts(count: int, seed: int = 0) -> list[str]:
    rnd = random.Random(seed)
    return ["\n@\n".join(" ".join(rnd.sample(WORDS, 2)) for _ in range(rnd.randint(2, 4)))
            for _ in range(count)]


def run_generator(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "generator", *args], cwd=REPO, text=True,
                          capture_output=True, timeout=120, **kw)


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_shapes_at_tiny_sizes_and_fast_cell_matches_nn_lstm(layers):
    torch.manual_seed(0)
    model = LSTMModel(ModelConfig(vocab_size=6, **{**TINY, "layers": layers})).eval()
    x = torch.randint(0, 6, (2, 3))
    logits, (h, c) = model(x)
    assert logits.shape == (2, 3, 6) and h.shape == c.shape == (layers, 2, 5)
    for int8, tolerance in ((False, 1e-5), (True, 2e-2)):  # int8: quantized matrix products
        cell = FastLSTM(model, int8=int8, banned=(4,))
        state = cell.zero_state(2)
        steps = torch.stack([cell.step(x[:, t], state) for t in range(3)], 1)
        assert torch.isneginf(steps[..., 4]).all()  # a banned token is never drawn
        steps[..., 4] = logits[..., 4]
        torch.testing.assert_close(steps, logits.detach(), atol=tolerance, rtol=tolerance)
        # a one-row state repeated for 2 rows continues like the original row (int8 quantizes
        # the activations per batch, hence the same tolerance)
        one = cell.zero_state(1)
        cell.step(x[:1, 0], one)
        both = one.repeat(2)
        torch.testing.assert_close(cell.step(x[:, 1], both)[:1], cell.step(x[:1, 1], one),
                                   atol=tolerance, rtol=tolerance)


def test_batches_are_contiguous_streams_split_across_ranks():
    ids = torch.arange(100)
    batches = StreamBatches(ids, rows=4, seq_len=3, seed=0)
    x0, y0 = batches.batch(0)
    x1, _ = batches.batch(1)
    assert x0.shape == (4, 3) and torch.equal(y0[:, :-1], x0[:, 1:])
    assert torch.equal(x1[:, 0], x0[:, -1] + 1)  # batch k+1 continues each row of batch k
    halves = [batches.batch(1, rank, 2)[0] for rank in (0, 1)]
    assert torch.equal(torch.cat(halves), x1)


def test_vocab_round_trip_end_symbol_and_unknowns():
    vocab = CharVocab.build(["АБ\n@\nВ"])
    ids = vocab.encode_posts(["АБ", "ЯZ"]).tolist()
    assert ids[0] == END and ids[3] == END and ids[-1] == END
    assert ids[4:6] == [UNK, UNK]
    assert vocab.decode(vocab.encode("АБ\n@")) == "АБ\n@"
    assert vocab.normalize_prime("привет\r\n\r\n日本 x") == "ПРИВЕТ\n日本 X"


def _tiny_trainer(tmp_path: Path, posts: list[str], **overrides) -> Trainer:
    vocab = CharVocab.build(posts)
    val_text = format_posts(posts[-2:])
    streams = Streams(vocab.encode_posts(posts), vocab.encode_posts(posts[-2:]),
                      len(format_posts(posts)), len(val_text), vocab.chars)
    cfg = TrainConfig(**{"batch_size": 2, "seq_len": 16, "lr": 1e-2, "warmup_steps": 1,
                         "eval_every": 100, "min_lr_ratio": 0.5, **overrides})
    model_cfg = ModelConfig(vocab_size=len(vocab), embed=8, hidden=48, layers=1, dropout=0.0)
    return Trainer(cfg, model_cfg, streams, tmp_path, torch.device("cpu"))


@pytest.fixture(scope="module")
def overfit_dir(tmp_path_factory) -> Path:
    """A model that learnt one short post by heart (the stream: END post END post ...)."""
    out = tmp_path_factory.mktemp("overfit")
    trainer = _tiny_trainer(out, ["КОТ\n@\nПЕС"] * 40, max_steps=300, bf16=False)
    trainer.run()
    modeldir.save_novelty(out, NoveltyIndex.build(["ДРУГОЙ\n@\nПОСТ"]))
    return out


def test_overfits_one_short_text_to_near_zero_loss(overfit_dir):
    model, vocab, info = load_model(overfit_dir)
    text = format_posts(["КОТ\n@\nПЕС"] * 20)
    assert text_bpc(model, vocab, text) < 0.05
    # the trainer's validation figure is eval's figure on the validation text (2 posts)
    val_text = format_posts(["КОТ\n@\nПЕС"] * 2)
    assert info["val_bpc"] == pytest.approx(text_bpc(model, vocab, val_text), rel=1e-6)
    assert info["trained_chars"] == 300 * 2 * 16


def test_sampling_stops_at_the_end_symbol(overfit_dir):
    gen = Generator.load(overfit_dir)
    texts, scores = gen.sample(8, "", 0.5, None, None, torch.Generator().manual_seed(0))
    assert texts == ["КОТ\n@\nПЕС"] * 8  # not continued into a second post, not 500 chars
    assert all(-0.05 < s <= 0 for s in scores)
    posts = gen.generate(n=2, seed=1, top_k=3, top_p=0.9)
    assert posts == ["КОТ\n@\nПЕС\n#neurobugurt"]  # duplicates collapse to one


def test_prime_with_unknown_characters_any_case_and_script(overfit_dir):
    gen = Generator.load(overfit_dir)
    texts, _ = gen.sample(3, gen.vocab.normalize_prime("кот ж 日本\nhi"), 0.8, None, None,
                          torch.Generator().manual_seed(0))
    assert all(t.startswith("КОТ Ж 日本\nHI") for t in texts)
    assert all(len(t) <= 500 for t in texts)
    assert isinstance(gen.generate(n=1, prime="€ ünïcödé 🙂", seed=3, candidates=4), list)


def test_save_load_identical_logits_and_clear_errors_for_bad_files(tmp_path):
    torch.manual_seed(1)
    model = LSTMModel(ModelConfig(vocab_size=6, **TINY)).eval()
    save_model(tmp_path, model, "АБВГ", info={"val_bpc": 1.5})
    loaded, vocab, info = load_model(tmp_path)
    x = torch.randint(0, 6, (2, 3))
    assert torch.equal(model(x)[0], loaded(x)[0])
    assert vocab.chars == "АБВГ" and info["val_bpc"] == 1.5
    path = tmp_path / modeldir.MODEL_FILE
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(UserError, match="truncated or not a neurobugurt"):
        load_model(tmp_path)
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(UserError, match="not a neurobugurt model"):
        load_model(tmp_path)
    with pytest.raises(UserError, match="not found"):
        Generator.load(tmp_path / "missing")


def test_result_lines_read_back_as_written_in_the_contracts_words():
    summary = {"chars": 44900352, "seconds": 6600.2691, "chars_per_sec": 6802.81,
               "best_val_bpc": 2.24141, "steps": 7}  # steps: not part of the line
    line = result.result_line(result.TRAIN_SUMMARY, summary)
    assert line == ("train_summary: chars=44900352 seconds=6600.269 chars_per_sec=6802.8 "
                    "best_val_bpc=2.2414")
    assert result.read_result(f"{line}\nlater noise", result.TRAIN_SUMMARY) == {
        "chars": 44900352, "seconds": 6600.269, "chars_per_sec": 6802.8, "best_val_bpc": 2.2414}
    bpc = result.result_line(result.BITS_PER_CHAR, {result.BITS_PER_CHAR: 2.0307201})
    assert bpc == "bits_per_char: 2.030720"
    assert result.read_result(bpc, result.BITS_PER_CHAR) == {result.BITS_PER_CHAR: 2.03072}
    assert result.read_result("no result here", result.BITS_PER_CHAR) == {}


@pytest.mark.slow  # runs python -m generator
def test_eval_cli_on_a_known_text(tmp_path):
    model = LSTMModel(ModelConfig(vocab_size=6, **TINY))
    for p in model.parameters():
        torch.nn.init.zeros_(p)  # uniform prediction: every symbol costs log2(6) bits
    save_model(tmp_path, model, "АБВГ", info={})
    text = "АБ\n@\nВЯ\n\n"  # END + 7 characters + END: 8 predicted symbols, 9 characters
    (tmp_path / "t.txt").write_text(text, encoding="utf-8")
    result = run_generator("eval", "--model", str(tmp_path), "--text", str(tmp_path / "t.txt"))
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("bits_per_char: ")
    assert float(last.split()[1]) == pytest.approx(8 * math.log2(6) / 9, rel=1e-5)
    bad = run_generator("eval", "--model", str(tmp_path), "--text", str(tmp_path / "none"))
    assert bad.returncode != 0 and "not found" in bad.stderr and "Traceback" not in bad.stderr


def test_export_of_a_base_keeps_the_weights_and_metrics_only(overfit_dir, tmp_path):
    for flags, out in (([], tmp_path / "served"), (["--base"], tmp_path / "base")):
        result = run_generator("export", "--model", str(overfit_dir), "--out", str(out), *flags)
        assert result.returncode == 0, result.stderr
        assert modeldir.read_model(out)["model"]["head.weight"].dtype == torch.bfloat16
    assert (tmp_path / "served" / modeldir.NOVELTY_FILE).is_file()
    assert sorted(p.name for p in (tmp_path / "base").iterdir()) == sorted(
        [modeldir.MODEL_FILE, modeldir.METRICS_FILE])
    refused = run_generator("sample", "--model", str(tmp_path / "base"), "-n", "1")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "--init-from" in refused.stderr.strip().splitlines()[-1]


def test_novelty_filter_rejects_copies_and_accepts_new_posts(tmp_path):
    posts = bugurts(50, seed=3) + ["ИДЕШЬ ПО УЛИЦЕ ВЕЧЕРОМ ПОСЛЕ ДЛИННОЙ СМЕНЫ НА ЗАВОДЕ\n@\nДОЖДЬ"]
    modeldir.save_novelty(tmp_path, NoveltyIndex.build(posts))
    index = modeldir.load_novelty(tmp_path)
    assert index.copy_reason(posts[7]) is not None
    long_run = "ВСТАЕШЬ\n@\nИДЕШЬ ПО УЛИЦЕ ВЕЧЕРОМ ПОСЛЕ ДЛИННОЙ СМЕНЫ НА ЗАВОДЕ"
    assert "character run" in index.copy_reason(long_run)
    assert index.copy_reason("ПРОСЫПАЕШЬСЯ УТРОМ\n@\nЗАВТРАК ОСТЫЛ\n@\nЖЕНА УШЛА") is None


def test_form_gate_and_line_cut():
    assert gate.form_reason("ТЫ\n@\nЯ") is None
    assert gate.form_reason("ОДНА СТРОКА") is not None
    assert gate.form_reason("А\nБ\n@\nВ") is not None
    assert gate.form_reason("ХА\n@\nАХАХАХАХАХА") is not None
    assert gate.form_reason("@\nА\n@\nБ") is not None
    assert gate.cut_at_line("А\n@\nБ\n@\nНЕДОПИСАН") == "А\n@\nБ"
    assert gate.cut_at_line("@\nНЕДОПИСАН") == ""
    # a user's prime stays whole, even when its own last line never ended before the cap
    assert gate.cut_at_line("Н\n@\nБШ\nЕАЕ НЕДОПИСАН", keep=len("Н\n@\nБШ\nЕАЕ")) == "Н\n@\nБШ\nЕАЕ"
    assert gate.cut_at_line("ТЫ\n@\nА\n@\nНЕДО", keep=len("ТЫ\n@")) == "ТЫ\n@\nА"
    assert gate.cut_at_line("ТЫ\n@\nНЕДО", keep=len("ТЫ\n@")) == "ТЫ\n@"
    assert finish("А\n@\nБ").splitlines()[-1] == "#neurobugurt"


def test_the_gate_passes_a_post_well_formed_and_new():
    copied = "ИДЕШЬ ПО УЛИЦЕ ВЕЧЕРОМ ПОСЛЕ ДЛИННОЙ СМЕНЫ НА ЗАВОДЕ\n@\nДОЖДЬ"
    index = NoveltyIndex.build([copied])
    assert gate.passes("ТЫ\n@\nЯ", index)
    assert not gate.passes("ОДНА СТРОКА", index)  # ill-formed
    assert not gate.passes(copied, index)  # a copy


def _ddp_worker(rank: int, init_file: str, out_file: str) -> None:
    import torch.distributed as dist

    from generator.train import leave_process_group, wrap_ddp

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=60))  # a hang fails, not stalls
    torch.manual_seed(0)
    model = LSTMModel(ModelConfig(vocab_size=6, **TINY, dropout=0.0))
    batches = StreamBatches(torch.arange(60) % 6, rows=4, seq_len=3)
    x, y = batches.batch(0, rank, 2)
    ddp = wrap_ddp(model)  # keep a reference: DDP's gradient hooks live as long as it does
    loss, _ = batch_loss(ddp, x, y, None, bf16=False)
    loss.backward()  # DDP all-reduces (averages) the gradients here
    if rank == 0:
        torch.save({k: p.grad for k, p in model.named_parameters()}, out_file)
    del ddp, loss
    leave_process_group()  # both ranks tear down together: see its docstring


@pytest.mark.slow  # two spawned processes
def test_ddp_two_gloo_processes_average_to_the_global_batch_gradient(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(str(tmp_path / "init"), str(tmp_path / "g.pt")), nprocs=2)
    ddp_grads = torch.load(tmp_path / "g.pt")
    torch.manual_seed(0)
    model = LSTMModel(ModelConfig(vocab_size=6, **TINY, dropout=0.0))
    x, y = StreamBatches(torch.arange(60) % 6, rows=4, seq_len=3).batch(0)
    batch_loss(model, x, y, None, bf16=False)[0].backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(ddp_grads[name], p.grad, atol=1e-6, rtol=1e-5)


def test_stream_bits_counts_every_symbol_once():
    model = LSTMModel(ModelConfig(vocab_size=6, **TINY))
    ids = torch.randint(0, 6, (5000,))
    whole = stream_bits(model, ids, rows=1)
    split = stream_bits(model, ids, rows=3)
    assert split == pytest.approx(whole, rel=0.01)  # rows restart from zero state: tiny change
    assert whole / 4999 == pytest.approx(math.log2(6), rel=0.05)


@pytest.mark.slow  # runs python -m generator
def test_bundled_model_writes_tagged_posts_through_the_cli():
    gen = Generator.load(BUNDLED_MODEL_DIR)
    assert gen.info["params"] > 0 and gen.info["val_bpc"] is not None
    result = run_generator("sample", "--model", str(BUNDLED_MODEL_DIR), "-n", "2", "--seed", "7")
    assert result.returncode == 0, result.stderr
    posts = [p for p in result.stdout.split("\n\n") if p.strip()]
    assert len(posts) == 2
    for post in posts:
        lines = post.strip("\n").split("\n")
        assert lines[-1] == "#neurobugurt" and gate.form_reason("\n".join(lines[:-1])) is None


def test_trainer_input_ignores_stale_split_files(tmp_path):
    corpus = tmp_path / "corpus.txt"
    old, new = bugurts(20), bugurts(30)
    write_corpus(corpus, old)
    train, val, from_files = read_split(corpus)
    assert from_files and train + val == old
    # a newer scrape whose write stopped after the corpus: the split files are the old ones
    write_text_atomic(corpus, format_posts(new))
    train, val, from_files = read_split(corpus)
    assert not from_files and (train, val) == split_posts(new)


@pytest.mark.slow  # runs python -m generator
def test_warm_start_carries_the_weights_of_shared_characters(overfit_dir, tmp_path):
    """--init-from: a new run on a corpus with one more character starts where the source was."""
    source, source_vocab, _ = load_model(overfit_dir)
    corpus = tmp_path / "corpus.txt"
    write_corpus(corpus, ["КОТ\n@\nПЕС"] * 30 + ["КОТ\n@\nПЕСЯ"] * 10)
    out = tmp_path / "warm"
    args = ["train", "--corpus", str(corpus), "--init-from", str(overfit_dir), "--batch-size", "2",
            "--seq-len", "16", "--max-steps", "1", "--eval-every", "1", "--lr", "1e-9"]
    result = run_generator(*args, "--out", str(out))
    assert result.returncode == 0, result.stderr
    model, vocab, info = load_model(out)
    assert info["init_from"] == str(overfit_dir) and "Я" in vocab.chars
    mine, theirs = vocab.shared_ids(source_vocab)
    assert len(mine) == len(source_vocab)  # every old symbol kept its rows
    assert torch.allclose(model.embed.weight[mine], source.embed.weight[theirs], atol=1e-6)
    assert torch.allclose(model.head.bias[mine], source.head.bias[theirs], atol=1e-6)
    assert torch.allclose(model.lstm.weight_hh_l0, source.lstm.weight_hh_l0, atol=1e-6)
    # the old post is still known by heart: a fresh model would spend ~log2(V) bits a character
    assert text_bpc(model, vocab, format_posts(["КОТ\n@\nПЕС"] * 20)) < 0.1
    # sizes come from the source; --resume and --init-from exclude each other
    clash = run_generator(*args, "--out", str(tmp_path / "w2"), "--hidden", "64")
    assert clash.returncode != 0 and "--hidden 64 differs from the 48" in clash.stderr
    default_lr = run_generator(*args[:-2], "--out", str(tmp_path / "w3"))  # no --lr
    assert default_lr.returncode == 0, default_lr.stderr
    lrs = [modeldir.load_checkpoint(d)["train_config"]["lr"]
           for d in (out, tmp_path / "w3")]
    assert lrs == [1e-9, WARM_START_LR]
    both = run_generator(*args, "--out", str(out), "--resume")
    assert both.returncode != 0 and "pass only one" in both.stderr
    assert "Traceback" not in clash.stderr + both.stderr


@pytest.mark.slow  # runs python -m generator
def test_a_new_cpu_run_without_batch_options_takes_the_cpu_batch(tmp_path):
    """On CPU the default batch is the small one that learns more per minute (BATCH_BY_DEVICE)."""
    corpus = tmp_path / "corpus.txt"
    write_corpus(corpus, bugurts(600))
    out = tmp_path / "cpu"
    result = run_generator("train", "--corpus", str(corpus), "--out", str(out), "--device", "cpu",
                           "--tokenizer", "char", "--layers", "1", "--hidden", "8", "--embed", "4",
                           "--max-steps", "1", "--eval-every", "1")
    assert result.returncode == 0, result.stderr
    saved = modeldir.load_checkpoint(out)["train_config"]
    assert (saved["batch_size"], saved["seq_len"]) == BATCH_BY_DEVICE["cpu"] == (32, 64)
    assert "batch 32×64" in result.stderr

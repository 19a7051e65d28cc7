"""Subword units (generator/unigram.py) beside characters: round trips, bits per character,
token healing, train → sample → eval through the CLI — at tiny sizes, offline."""

from __future__ import annotations

import math
import random

import pytest
import torch
from torch.nn import functional as F

from bot.prime import unknown_chars
from common.config import BotConfig
from common.corpus import format_posts, parse_posts, write_corpus
from generator import modeldir
from generator.evaluate import text_bpc
from generator.model import LSTMModel, ModelConfig
from generator.modeldir import tokenizer_from
from generator.sample import Generator
from generator.sampling import TEMPERATURE
from generator.tokenizer import END, UNK, CharVocab
from generator.unigram import Unigram, VocabSizeError, _sample
from tests.test_generator import run_generator

torch.set_num_threads(1)
WORDS = ("ЖДУ АВТОБУС АВТОБУСА НЕТ ЁЖИК КОНДУКТОР ПРИЕХАЛ УЕХАЛ БЕЗ МЕНЯ ДОМОЙ ПЕШКОМ "
         "ОПОЗДАЛ НА ПАРУ ПРЕПОД ДОВОЛЕН").split()
SIZE = 300  # smallest sizes sentencepiece takes here: 256 bytes + the characters + a few pieces


def bugurts(count: int, seed: int = 0) -> list[str]:
    """Posts as the corpus writes them: upper case lines separated by `@` lines."""
    rnd = random.Random(seed)
    return ["\n@\n".join(" ".join(rnd.choices(WORDS, k=rnd.randint(1, 4)))
                         for _ in range(rnd.randint(2, 5))) for _ in range(count)]


@pytest.fixture(scope="module")
def posts() -> list[str]:
    return bugurts(120)


@pytest.fixture(scope="module")
def unigram(posts) -> Unigram:
    return Unigram.train(posts, SIZE)


def test_every_post_and_odd_text_comes_back_exactly(unigram, posts):
    assert len(unigram) == SIZE and unigram.kind == "unigram"
    assert all(unigram.decode(unigram.encode(post)) == post for post in posts)
    # spaces kept as typed, characters without a piece (bytes), lines of `@`, a lone newline
    odd = [" ЖДУ  АВТОБУС \n@\n😀 Q\n", "\n\nЁ", "ЖДУ\n@\n@\nАВТОБУС", "日本\ttab"]
    assert all(unigram.decode(unigram.encode(text)) == text for text in odd)
    assert UNK not in unigram.encode("".join(odd))
    # a line break, and the `@` line between two lines, are one token each
    assert len(unigram.encode("\n")) == 1
    separator = unigram.encode("\n@\n")
    assert len(separator) == 1 and all(separator[0] in unigram.encode(p) for p in posts[:5])
    # END is one id between posts, never inside one
    stream = unigram.encode_posts(posts[:3]).tolist()
    assert stream[0] == stream[-1] == END and stream.count(END) == 4
    assert unigram.decode(stream) == "".join(posts[:3])
    assert unigram.writes("Ж") and not unigram.writes("😀")
    # the stored form (inside model.pt) gives the same units back
    again = tokenizer_from(unigram.stored())
    assert again.token_bytes == unigram.token_bytes and again.encode(posts[0]) == unigram.encode(
        posts[0])


def test_a_vocabulary_the_corpus_cannot_fill_is_one_clear_sentence(posts):
    with pytest.raises(VocabSizeError, match=r"at most \d+ subword units.*smaller --vocab-size"):
        Unigram.train(posts, 5000)
    with pytest.raises(VocabSizeError, match=r"below the \d+ units.*larger --vocab-size"):
        Unigram.train(posts, 60)


def test_bits_per_character_are_the_stream_bits_over_the_text_characters(unigram, posts):
    torch.manual_seed(0)
    model = LSTMModel(ModelConfig(vocab_size=len(unigram), embed=8, hidden=16, layers=2)).eval()
    text = format_posts(posts[:6])
    ids = [END]
    for post in parse_posts(text):
        ids += unigram.encode(post) + [END]
    with torch.no_grad():
        logits, _ = model(torch.tensor([ids[:-1]]))
    bits = F.cross_entropy(logits[0], torch.tensor(ids[1:]), reduction="sum").item() / math.log(2)
    assert len(ids) < 0.6 * len(text)  # a token covers several characters here
    assert text_bpc(model, unigram, text) == pytest.approx(bits / len(text), rel=1e-5)


def _generator(unigram: Unigram, **boost: float) -> Generator:
    """An untrained model made sure of some pieces (`boost`: piece → its logit) everywhere."""
    torch.manual_seed(0)
    model = LSTMModel(ModelConfig(vocab_size=len(unigram), embed=8, hidden=16, layers=1)).eval()
    with torch.no_grad():
        for piece, logit in boost.items():
            model.head.bias[END if piece == "END" else unigram.index[piece]] = logit
    return Generator(model, unigram, novelty=None, info={})


def test_a_prime_ending_inside_a_piece_continues_it(unigram):
    assert "▁АВТОБУСА" in unigram.index and "▁АВТОБУС" in unigram.index
    ids, tail = unigram.heal("ЖДУ АВТОБУС")
    assert unigram.decode(ids) == "ЖДУ" and tail == " АВТОБУС"
    assert unigram.heal("ЖДУ\n@\nНЕТ") == (unigram.encode("ЖДУ\n@\n"), "НЕТ")
    assert CharVocab("ЖДУ ").heal("ЖДУ") == ([2, 3, 4], "")  # characters never split
    # The tokens that may spell the tail: those it starts with, or that start with it.
    fits = _generator(unigram)._fits([b" \xd0\x90", b""])  # " А", and a row done with its tail
    allowed = {unigram.sp.id_to_piece(i) for i in fits[0].nonzero()[:, 0].tolist()}
    assert {"▁", "▁АВТОБУСА", "▁АВТОБУС"} <= allowed and "▁ЖДУ" not in allowed
    assert all(p.startswith("▁А") or p == "▁" or p == "<0x20>" for p in allowed)
    assert fits[1].all()
    # A model that wants the post to end, and else `▁АВТОБУСА`, may not end inside the prime's
    # word: it writes `▁АВТОБУСА` (reading `▁АВТОБУС` as typed would forbid that), then ends.
    rng = torch.Generator().manual_seed(0)
    gen = _generator(unigram, END=30.0, **{"▁АВТОБУСА": 20.0})
    for top_k in (None, 5):
        texts, scores = gen.sample(4, "ЖДУ АВТОБУС", 1.0, top_k, None, rng)
        assert texts == ["ЖДУ АВТОБУСА"] * 4
        assert all(-1e-3 < s <= 0 for s in scores)  # two sure tokens over 9 characters


def test_samples_keep_the_character_cap_and_score_per_character(unigram):
    rng = torch.Generator().manual_seed(1)
    # 10 characters a token, lines, never END: every row runs into the cap, cut at a line
    gen = _generator(unigram, **{"▁КОНДУКТОР": 30.0, "\n": 29.5})
    texts, scores = gen.sample(3, "", 1.0, None, None, rng)
    assert all(400 < len(t) <= 500 and "\n" in t for t in texts)
    assert all(-2.0 < s < 0 for s in scores)  # per character: a token's nat over its 10 chars
    texts, scores = _generator(unigram, END=4.0).sample(8, "НЕТ", 1.0, None, None, rng)
    assert all(t.startswith("НЕТ") and len(t) <= 500 for t in texts)
    assert all(math.isfinite(s) and s <= 0 for s in scores)


def test_train_sample_eval_through_the_command_line(tmp_path, posts):
    corpus = tmp_path / "corpus.txt"
    write_corpus(corpus, posts)
    out = tmp_path / "model"
    common = ["train", "--corpus", str(corpus), "--tokenizer", "unigram", "--batch-size", "4",
              "--seq-len", "16", "--embed", "8", "--hidden", "16", "--layers", "1",
              "--eval-every", "5", "--no-bf16"]
    result = run_generator(*common, "--vocab-size", str(SIZE), "--max-steps", "10",
                           "--out", str(out))
    assert result.returncode == 0, result.stderr
    stored = modeldir.read_model(out)["vocab"]
    assert stored["kind"] == "unigram" and len(tokenizer_from(stored)) == SIZE
    # options not given come from the unigram recipe; the embedding width was given
    checkpoint = modeldir.load_checkpoint(out)
    model_config = checkpoint["model_config"]
    assert model_config["embed"] == 8 and model_config["tie_weights"]
    assert (model_config["weight_drop"], model_config["locked_dropout"]) == (0.25, 0.2)
    assert checkpoint["train_config"]["ema_decay"] == 0.999
    # chars counted are characters, not tokens: more than batch × window × steps
    assert int(result.stdout.split("chars=")[1].split()[0]) > 4 * 16 * 10
    sampled = run_generator("sample", "--model", str(out), "-n", "2", "--seed", "3",
                            "--prime", "ждУ автобус")
    assert "ЖДУ АВТОБУС" in sampled.stdout or "no sample passed" in sampled.stderr
    evaluated = run_generator("eval", "--model", str(out), "--text", str(corpus))
    assert evaluated.returncode == 0, evaluated.stderr
    model, tokenizer, _ = modeldir.load_model(out)
    bpc = float(evaluated.stdout.split("bits_per_char:")[1])
    assert bpc == pytest.approx(text_bpc(model, tokenizer, corpus.read_text()), rel=1e-5)
    # --resume and --init-from read the source's units; they are never learned again
    resumed = run_generator(*common, "--max-steps", "15", "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    warm = tmp_path / "warm"
    other = tmp_path / "other.txt"
    write_corpus(other, bugurts(80, seed=5))
    started = run_generator("train", "--corpus", str(other), "--init-from", str(out),
                            "--batch-size", "4", "--seq-len", "16", "--max-steps", "2",
                            "--eval-every", "1", "--no-bf16", "--out", str(warm))
    assert started.returncode == 0, started.stderr
    assert modeldir.read_model(warm)["vocab"] == stored
    clash = run_generator(*common, "--max-steps", "15", "--out", str(out), "--resume",
                          "--tokenizer", "char")
    assert clash.returncode != 0 and "differs from the unigram units" in clash.stderr
    plain = tmp_path / "plain"
    untied = run_generator(*common, "--vocab-size", str(SIZE), "--max-steps", "1", "--out",
                           str(plain), "--no-tie-weights", "--weight-drop", "0", "--ema-decay", "0")
    assert untied.returncode == 0, untied.stderr
    checkpoint = modeldir.load_checkpoint(plain)
    assert not checkpoint["model_config"]["tie_weights"]
    assert checkpoint["model_config"]["weight_drop"] == 0.0
    assert checkpoint["train_config"]["ema_decay"] == 0.0
    big = run_generator(*common, "--vocab-size", "5000", "--out", str(tmp_path / "big"))
    lines = big.stderr.strip().splitlines()
    assert big.returncode != 0 and len(lines) == 1 and "pass a smaller --vocab-size" in lines[0]
    # With no --tokenizer a new model learns 4,000 unigram units: this corpus has too few words
    default = run_generator(*[a for a in common if a not in ("--tokenizer", "unigram")],
                            "--out", str(tmp_path / "default"))
    lines = default.stderr.strip().splitlines()
    assert default.returncode == 2 and len(lines) == 1, default.stderr
    assert "fewer than --vocab-size 4000" in lines[0] and "--tokenizer char" in lines[0]


def test_char_model_directories_read_as_before(tmp_path, bot_model):
    model, tokenizer, _ = modeldir.load_model(bot_model)  # a character model
    assert isinstance(tokenizer, CharVocab) and tokenizer.stored() == modeldir.read_model(
        bot_model)["vocab"]
    gen = Generator(model, tokenizer, novelty=None, info={})
    assert unknown_chars(gen, "ЖДУ 😀\nQ") == sorted(
        {ch for ch in "ЖДУ😀Q" if ch not in tokenizer.index}) and "😀" not in tokenizer.index
    texts, _ = gen.sample(2, "ЖДУ АВТОБУС", 0.8, None, None, torch.Generator().manual_seed(0))
    assert all(t.startswith("ЖДУ АВТОБУС") for t in texts)
    with pytest.raises(modeldir.ModelFormatError, match="no readable tokenizer"):
        modeldir.tokenizer_of({"vocab": {"kind": "bpe"}}, tmp_path / "model.pt")


def test_a_sample_without_temperature_takes_the_units_default(unigram):
    """Unigram models sample cooler than character models by default (sampling.TEMPERATURE),
    at the middle of the bot's temperatures, the value it serves."""
    gen = _generator(unigram)
    assert gen.temperature == TEMPERATURE["unigram"] < TEMPERATURE["char"]
    arms = sorted(BotConfig().temperatures)
    assert arms[len(arms) // 2] == TEMPERATURE["unigram"]
    rows = [gen.sample(4, "", t, None, None, torch.Generator().manual_seed(1))[0]
            for t in (gen.temperature, 1.0)]
    assert rows[0] != rows[1]


def test_units_are_learned_from_a_seeded_sample_of_a_large_corpus(posts, monkeypatch):
    """A corpus over UNITS_SAMPLE_CHARS (a pretraining mixture) is sampled, the same way each
    time and within the cap; a smaller one is read whole."""
    chars = sum(map(len, posts))
    assert _sample(posts, chars) is posts
    picked = _sample(posts, chars // 3)
    assert picked == _sample(posts, chars // 3)
    assert 0 < sum(map(len, picked)) <= chars // 3 and set(picked) <= set(posts)
    monkeypatch.setattr("generator.unigram.UNITS_SAMPLE_CHARS", chars // 2)
    assert len(Unigram.train(posts, 300)) == 300  # learns from the sample

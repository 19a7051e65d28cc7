"""The model directory's owner (generator/modeldir.py) and the atomic write every writer uses."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from common.atomic import write_atomic, write_text_atomic
from common.cli import UserError
from common.config import BUNDLED_MODEL_DIR
from generator import modeldir, novelty
from generator.model import LSTMModel, ModelConfig
from generator.sample import Generator
from generator.tag import TAG
from harness.paths import REPO

torch.set_num_threads(1)  # tiny models: threads only add sync cost on a shared 2-core machine
TINY = ModelConfig(vocab_size=6, embed=4, hidden=5, layers=2)
POSTS = ["ИДЕШЬ ПО УЛИЦЕ ВЕЧЕРОМ ПОСЛЕ ДЛИННОЙ СМЕНЫ НА ЗАВОДЕ\n@\nДОЖДЬ", "КОТ\n@\nПЕС"]


class Unsaveable:
    """A payload item whose serialisation fails part-way, like a full disk or a bad tensor."""

    def __reduce__(self):
        raise RuntimeError("serialisation failed")


def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path):
    path = tmp_path / "sub" / "file.txt"
    write_text_atomic(path, "old")  # creates the folder too
    assert path.read_text() == "old"

    def half_then_fail(fh):
        fh.write(b"new but only half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomic(path, half_then_fail)
    assert path.read_text() == "old"
    assert [p.name for p in path.parent.iterdir()] == ["file.txt"]  # no temp file left behind
    write_text_atomic(path, "новый")
    assert path.read_text(encoding="utf-8") == "новый"


def test_a_checkpoint_that_fails_to_serialise_leaves_the_previous_one(tmp_path):
    modeldir.save_checkpoint(tmp_path, {"step": 10, "model": {"w": torch.ones(3)}})
    with pytest.raises(RuntimeError, match="serialisation failed"):
        modeldir.save_checkpoint(tmp_path, {"step": 20, "model": {"w": Unsaveable()}})
    state = modeldir.load_checkpoint(tmp_path)
    assert state["step"] == 10 and state["kind"] == "train"
    assert torch.equal(state["model"]["w"], torch.ones(3))
    assert modeldir.holds_training(tmp_path) and not modeldir.holds_training(tmp_path / "none")


def test_model_round_trip_in_bf16_and_copy_of_the_extras(tmp_path):
    torch.manual_seed(0)
    model = LSTMModel(TINY).eval()
    src, dst = tmp_path / "src", tmp_path / "dst"
    modeldir.save_model(src, model, "АБВГ", info={"val_bpc": 1.5}, primer=[1, 2, 0])
    modeldir.save_novelty(src, novelty.NoveltyIndex.build(POSTS))
    modeldir.append_metrics(src, {"step": 1})
    loaded, vocab, info = modeldir.load_model(src)
    x = torch.randint(0, 6, (2, 3))
    assert torch.equal(model(x)[0], loaded(x)[0])
    assert vocab.chars == "АБВГ" and info == {"val_bpc": 1.5, "primer": [1, 2, 0]}
    # export: bf16 weights, the novelty index and metrics copied byte for byte
    modeldir.save_model(dst, loaded, vocab.chars, {}, dtype=torch.bfloat16)
    modeldir.copy_extras(src, dst)
    assert modeldir.read_model(dst)["model"]["head.weight"].dtype == torch.bfloat16
    for name in (modeldir.NOVELTY_FILE, modeldir.METRICS_FILE):
        assert (dst / name).read_bytes() == (src / name).read_bytes()
    assert modeldir.load_novelty(dst).copy_reason(POSTS[0]) is not None


def test_metrics_append_read_and_trim_to_the_resumed_step(tmp_path):
    assert modeldir.read_metrics(tmp_path) == []
    for step in (10, 20, 30, 40):
        modeldir.append_metrics(tmp_path, {"step": step, "val_bpc": None})
    path = tmp_path / modeldir.METRICS_FILE
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"step": 5')  # a line cut short by a kill: no step, counts as past any
    assert [r["step"] for r in modeldir.read_metrics(tmp_path)] == [10, 20, 30, 40]
    modeldir.trim_metrics(tmp_path, 20)
    assert path.read_text(encoding="utf-8").splitlines() == [
        '{"step": 10, "val_bpc": null}', '{"step": 20, "val_bpc": null}']
    modeldir.clear_metrics(tmp_path)
    assert not path.exists()
    modeldir.trim_metrics(tmp_path, 20)  # nothing to trim is no error and writes nothing
    assert not path.exists()


def test_bad_files_raise_the_modules_own_errors(tmp_path):
    modeldir.save_model(tmp_path, LSTMModel(TINY), "АБВГ", info={})
    path = tmp_path / modeldir.MODEL_FILE
    payload = torch.load(path, weights_only=True)
    torch.save({**payload, "version": modeldir.VERSION + 1}, path)
    with pytest.raises(modeldir.ModelFormatError, match="format version 2, this code reads 1"):
        modeldir.load_model(tmp_path)
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(modeldir.ModelFormatError, match="not a neurobugurt model file"):
        modeldir.load_model(tmp_path)
    path.write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(modeldir.ModelFormatError, match="truncated"):
        modeldir.read_model(tmp_path)
    with pytest.raises(modeldir.ModelDirError, match="model directory .* not found") as missing:
        modeldir.load_model(tmp_path / "missing")
    assert not isinstance(missing.value, modeldir.ModelFormatError)
    with pytest.raises(modeldir.ModelDirError, match="checkpoint.pt not found"):
        modeldir.load_checkpoint(tmp_path)
    with pytest.raises(modeldir.ModelDirError, match="no novelty.npz: a base model"):
        modeldir.load_novelty(tmp_path)  # weights without an index: `export --base`
    (tmp_path / "empty").mkdir()
    with pytest.raises(modeldir.ModelDirError, match="novelty.npz is missing or unreadable"):
        modeldir.load_novelty(tmp_path / "empty")
    # what run_cli shows as one line: every command's edge, the bot's start-up included
    assert issubclass(modeldir.ModelDirError, UserError)


def older_novelty_index(model_dir) -> None:
    """A novelty.npz whose filters were built with other window sizes (another code version)."""
    arrays = novelty.NoveltyIndex.build(POSTS).to_arrays()
    arrays["params"] = np.array([novelty.SHINGLE_WORDS, novelty.WINDOW * 2, novelty.STRIDE])
    with open(model_dir / modeldir.NOVELTY_FILE, "wb") as fh:
        np.savez(fh, **arrays)


def test_an_older_model_directory_is_one_clear_line_on_the_command_line(tmp_path):
    old_weights, old_index = tmp_path / "old-weights", tmp_path / "old-index"
    for folder in (old_weights, old_index):
        modeldir.save_model(folder, LSTMModel(TINY), "АБВГ", info={})
        modeldir.save_novelty(folder, novelty.NoveltyIndex.build(POSTS))
    payload = torch.load(old_weights / modeldir.MODEL_FILE, weights_only=True)
    torch.save({**payload, "version": 0}, old_weights / modeldir.MODEL_FILE)
    older_novelty_index(old_index)
    expected = {old_weights: "has format version 0, this code reads 1: retrain the model",
                old_index: "built with other parameters): retrain the model"}
    for folder, reason in expected.items():
        result = subprocess.run(
            [sys.executable, "-m", "generator", "sample", "--model", str(folder)],
            cwd=REPO, text=True, capture_output=True, timeout=120)
        assert result.returncode == 2 and result.stdout == ""
        assert "Traceback" not in result.stderr, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and reason in lines[0], lines


def test_model_directories_written_before_the_renames_load_and_an_old_ranker_is_ignored(
        tmp_path):
    """The bundled model was written when the class was CharLSTM, the format tag said "char"
    and directories could hold a ranker.pt: it loads and samples, with such a file beside it
    too; saved again, it takes today's tag."""
    bundled = modeldir.read_model(BUNDLED_MODEL_DIR)
    assert bundled["format"] == modeldir.OLD_FORMAT == "neurobugurt-char-lstm"
    for name in (modeldir.MODEL_FILE, modeldir.NOVELTY_FILE):
        (tmp_path / name).symlink_to(BUNDLED_MODEL_DIR / name)
    (tmp_path / "ranker.pt").write_bytes(b"an n-gram ranker of an older version")
    generator = Generator.load(tmp_path)
    assert isinstance(generator.model, LSTMModel) and generator.vocab.kind == "unigram"
    posts = generator.generate(n=1, seed=1, candidates=4)
    assert len(posts) == 1 and posts[0].endswith("\n" + TAG)
    modeldir.save_model(tmp_path / "new", generator.model, generator.vocab.stored(), info={})
    assert modeldir.read_model(tmp_path / "new")["format"] == modeldir.FORMAT == "neurobugurt-lstm"


def test_a_model_and_checkpoint_saved_with_the_old_format_tag_load_and_sample(tmp_path, bot_model):
    """Files tagged "neurobugurt-char-lstm" (every model directory written before the tag was
    corrected) serve and resume as before."""
    for name in (modeldir.NOVELTY_FILE, modeldir.MODEL_FILE):
        (tmp_path / name).write_bytes((bot_model / name).read_bytes())
    checkpoint = {"kind": "train", "version": modeldir.VERSION, "step": 3}
    for name, payload in ((modeldir.MODEL_FILE, modeldir.read_model(tmp_path)),
                          (modeldir.CHECKPOINT_FILE, checkpoint)):
        payload = {**payload, "format": modeldir.OLD_FORMAT}
        write_atomic(tmp_path / name, lambda fh, payload=payload: torch.save(payload, fh))
    assert modeldir.read_model(tmp_path)["format"] == modeldir.OLD_FORMAT
    assert modeldir.load_checkpoint(tmp_path)["step"] == 3
    posts = Generator.load(tmp_path).generate(n=2, seed=1, candidates=8)
    assert posts and all(p.endswith("\n" + TAG) for p in posts)

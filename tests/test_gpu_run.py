"""tools/gpu_run.py, the one-call GPU run, at a tiny size on the CPU, in the GPU machine's python:
the generator's own packages and those of torch, numpy, PyYAML, tqdm and sentencepiece only."""

from __future__ import annotations

import json
import lzma
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from common.corpus import format_posts, read_split, write_corpus
from generator import modeldir
from generator.result import BITS_PER_CHAR, read_result
from harness.paths import REPO
from tests.test_generator import bugurts
from tools import gpu_steps

# What the GPU machine's python has (KINDS.md lists more; these are all the generator may need).
GPU_PACKAGES = ("torch", "numpy", "pyyaml", "tqdm", "sentencepiece")
OURS = ("common", "generator", "tools")  # the repository's modules the run may import
BUNDLE = REPO / "generator" / "bundled"


def _requirements(names) -> set[str]:
    """The distributions `names` need, transitively (optional extras left out)."""
    todo, seen = [*names], set()
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [re.split(r"[ ;<>=!~\[(]", r, maxsplit=1)[0] for r in requires
                 if "extra ==" not in r]
    return seen


def gpu_python(tmp_path: Path) -> dict[str, str]:
    """An environment whose children cannot import any other installed package (sitecustomize
    runs first in each): bot/ and scraper/ and their packages included."""
    allowed = _requirements(GPU_PACKAGES)
    hidden = sorted(
        module for module, dists in metadata.packages_distributions().items()
        if module.isidentifier() and not module.startswith("_") and module not in OURS
        and not any(re.sub(r"[-_.]+", "-", d).lower() in allowed for d in dists))
    assert {"telegram", "apscheduler", "vk_api", "bot", "scraper"} <= set(hidden)
    folder = tmp_path / "hide"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(
        "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in hidden))
    return {"PYTHONPATH": str(folder), "PATH": "/usr/bin:/bin"}


def run_gpu_run(args: list[str], env: dict, out: Path) -> dict:
    done = subprocess.run([sys.executable, "tools/gpu_run.py", "run", "--out", str(out),
                           "--device", "cpu", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env=env)
    log = (out / "run.log").read_text() if (out / "run.log").exists() else ""
    assert done.returncode == 0, done.stderr[-3000:] + log[-3000:]
    return json.loads((out / "summary.json").read_text())


def unpacked(out: Path, dest: Path) -> Path:
    subprocess.run([sys.executable, "tools/gpu_run.py", "unpack", str(out / "model"), str(dest)],
                   cwd=REPO, check=True, capture_output=True, timeout=60)
    return dest


def evaluates(model_dir: Path, text: Path, env: dict) -> float:
    done = subprocess.run([sys.executable, "-m", "generator", "eval", "--model", str(model_dir),
                           "--text", str(text)], cwd=REPO, capture_output=True, text=True,
                          timeout=120, check=True, env=env)
    return read_result(done.stdout, BITS_PER_CHAR)[BITS_PER_CHAR]


@pytest.mark.slow  # trains four tiny models in child processes
def test_gpu_run_trains_checks_resume_and_torchrun_and_packs_a_loadable_model(tmp_path):
    corpus = tmp_path / "corpus.txt"
    write_corpus(corpus, bugurts(80))
    out = tmp_path / "OUT"
    env = gpu_python(tmp_path)
    summary = run_gpu_run(["--corpus", str(corpus), "--minutes", "0.05", "--", "--tokenizer",
                           "char", "--layers", "1", "--hidden", "16", "--embed", "8",
                           "--batch-size", "8", "--seq-len", "16", "--eval-every", "10"],
                          env, out)
    assert summary["train"]["ok"] and summary["train"]["chars"] > 0
    assert summary["resume"]["killed_mid_run"] is True
    assert summary["resume"]["bit_identical"] is True  # on the CPU a resume is exact
    assert summary["torchrun"]["ok"]
    assert summary["files"] == sorted(p.name for p in (out / "model").iterdir()) \
        == ["model.tar.part00of01"]

    model_dir = unpacked(out, tmp_path / "unpacked")
    sample = subprocess.run([sys.executable, "-m", "generator", "sample", "--model",
                             str(model_dir), "-n", "1", "--seed", "1"], cwd=REPO,
                            capture_output=True, text=True, timeout=120, env=env)
    # It loads and samples; a model trained for 3 seconds may write nothing the gate passes.
    assert sample.returncode == 0 or sample.stderr.startswith(
        "error: no sample passed the quality gate"), sample.stderr
    assert evaluates(model_dir, corpus, env) > 0


def write_pretrain(folder: Path) -> tuple[list[str], list[str]]:
    """A tiny ru-pretrain: lower-case documents, as the real one keeps their case."""
    literature = [f"жил-был кот номер {i}.\nон ловил мышей в амбаре." for i in range(30)]
    informal = [f"приходит мужик в бар номер {i}.\nа там медведь." for i in range(20)]
    folder.mkdir()
    for name, posts in (("literature.txt.xz", literature), ("informal.txt.xz", informal)):
        with lzma.open(folder / name, "wt", encoding="utf-8") as f:
            f.write(format_posts(posts))
    return literature, informal


@pytest.mark.slow  # the resume check, stage two, export and feed are children (~60 s here)
def test_gpu_run_mixture_pretrains_then_fine_tunes_in_the_bundle_units(tmp_path):
    corpus = tmp_path / "corpus.txt"
    write_corpus(corpus, bugurts(80))
    train, val, _ = read_split(corpus)
    literature, informal = write_pretrain(tmp_path / "ru-pretrain")
    out = tmp_path / "OUT"
    env = gpu_python(tmp_path)
    summary = run_gpu_run(["--corpus", str(corpus), "--mixture", str(tmp_path / "ru-pretrain"),
                           "--minutes", "0.1", "--sizes", "1x16x8", "--batch", "8x16",
                           "--feed-posts", "2"], env, out)
    assert summary["ok"] is True
    assert "ok" in summary["bf16"] and summary["bf16"]["torch"]  # reported, whatever it says
    mix = summary["mixture"]
    assert mix["documents"] == len(literature) + len(informal) + 3 * len(train)
    assert mix["bugurt_chars"] == 3 * sum(map(len, train))
    recipe = summary["recipe"]
    assert recipe["size"] == "1x16x8" and recipe["batch"] == [8, 16]
    assert recipe["minutes"] == pytest.approx([0.07, 0.03], abs=1e-3)
    one, two = recipe["dropouts"]  # more passes over a stage's text, stronger dropouts
    assert (recipe["passes"][0] < recipe["passes"][1]) == (one["weight_drop"] < two["weight_drop"])
    assert summary["stage_one"]["ok"] and summary["stage_one"]["steps"] > 0
    assert summary["stage_two"]["ok"] and summary["stage_two"]["exit"] == 0
    assert summary["resume"]["killed_mid_run"] is True
    assert summary["resume"]["bit_identical"] is True
    assert summary["units_of_base"] is True
    # both measured on the same split (which is ahead depends on how many steps the machine's
    # speed allowed in the seconds given: the tiny model can beat the bundle on made-up posts)
    bpc = summary["bpc"]
    assert 0 < bpc["base"] < 20 and 0 < bpc["result"] < 20
    assert bpc["gain"] == pytest.approx(bpc["base"] - bpc["result"])
    assert set(summary["seconds"]) >= {"mixture", "recipe", "stage_one", "stage_two", "feed"}
    assert summary["feed"]["searches"] == 1
    # a model trained for seconds may finish no post (`generator feed` then exits 2, one line)
    assert summary["feed"]["exit"] in (0, 2)
    assert (out / "feed.txt").read_text().count("#neurobugurt") == summary["feed"]["posts"]

    model_dir = unpacked(out, tmp_path / "unpacked")
    model, base = modeldir.read_model(model_dir), modeldir.read_model(BUNDLE)
    assert model["vocab"] == base["vocab"]  # the bundle's units: it loads where the bundle does
    assert model["model_config"]["hidden"] == 16 and model["model_config"]["layers"] == 1
    assert model["info"]["init_from"].endswith("stage1")  # stage two started from stage one
    assert (model_dir / modeldir.NOVELTY_FILE).exists()  # of the bugurts: ready to serve
    val_file = tmp_path / "val.txt"
    val_file.write_text(format_posts(val), encoding="utf-8")
    assert evaluates(model_dir, val_file, env) == pytest.approx(summary["bpc"]["result"],
                                                                abs=0.05)  # bf16 weights


def test_gpu_run_mixture_says_what_is_missing(tmp_path):
    done = subprocess.run([sys.executable, "tools/gpu_run.py", "run", "--out", str(tmp_path),
                           "--corpus", str(tmp_path / "none.txt"), "--mixture", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'none.txt'} not found: carry it with the call (README, "
        "\"Training on a lent GPU in one call\")"]


def test_pack_and_unpack_round_trip_a_model_larger_than_a_part(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_steps, "PART_BYTES", 4000)
    src = tmp_path / "src"
    src.mkdir()
    (src / "model.pt").write_bytes(bytes(range(256)) * 9)  # the tar is 10 KB: 3 parts
    (src / "metrics.jsonl").write_text("{}\n")
    written = gpu_steps.pack(src, tmp_path / "parts")
    assert written == ["model.tar.part00of03", "model.tar.part01of03", "model.tar.part02of03"]
    assert max((tmp_path / "parts" / n).stat().st_size for n in written) <= 4000
    gpu_steps.unpack(tmp_path / "parts", tmp_path / "joined")
    for name in ("model.pt", "metrics.jsonl"):
        assert (tmp_path / "joined" / name).read_bytes() == (src / name).read_bytes()
    (tmp_path / "parts" / written[1]).unlink()  # a part that did not come back
    with pytest.raises(SystemExit, match="do not make a whole model"):
        gpu_steps.unpack(tmp_path / "parts", tmp_path / "again")


def test_pack_refuses_a_model_the_device_tool_cannot_return(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_steps, "PART_BYTES", 100)
    src = tmp_path / "src"
    src.mkdir()
    (src / "model.pt").write_bytes(bytes(1000))  # the tar's 10 KB: > 5 parts of 100 bytes
    with pytest.raises(SystemExit, match="train a smaller model"):
        gpu_steps.pack(src, tmp_path / "parts")


@pytest.mark.slow  # starts two worker processes, each importing torch
def test_encode_parallel_gives_the_stream_of_encode_posts(monkeypatch):
    from tools import gpu_mix

    monkeypatch.setattr(gpu_mix, "POOL_MIN_CHARS", 0)  # the real mixture's size takes the pool
    vocab = modeldir.tokenizer_of(modeldir.read_model(BUNDLE), BUNDLE)
    posts = [p.upper() for p in bugurts(50)]
    stream = gpu_mix.encode_parallel(vocab.stored(), posts, workers=2)
    assert stream.tolist() == vocab.encode_posts(posts).tolist()


def test_recipe_takes_the_largest_size_that_reads_the_mixture_and_comes_back(monkeypatch):
    import torch

    from tools import gpu_mix

    sizes = [gpu_mix.Size.parse("2x32x8"), gpu_mix.Size.parse("1x16x8")]
    args = (sizes, (4, 8), 50, torch.device("cpu"), False, 1.0, 10_000, 1_000, 2.5)
    monkeypatch.setattr(gpu_mix, "MIN_PASSES", 0.0)
    fast = gpu_mix.choose_recipe(*args)
    assert fast["size"] == "2x32x8" and len(fast["probes"]) == 1
    assert fast["minutes"] == [0.7, pytest.approx(0.3)]
    assert fast["dropouts"][0] == gpu_mix.awd_dropouts(fast["passes"][0])
    monkeypatch.setattr(gpu_mix, "MIN_PASSES", 1e12)  # none is fast enough: the smallest
    assert gpu_mix.choose_recipe(*args)["size"] == "1x16x8"
    monkeypatch.setattr(gpu_mix, "WEIGHT_BYTES", 1000)  # none comes back
    with pytest.raises(SystemExit, match="pass smaller --sizes"):
        gpu_mix.choose_recipe(*args)


def test_dropouts_grow_with_the_passes_to_awd_lstm_values():
    from tools import gpu_mix

    assert gpu_mix.awd_dropouts(0) == {"weight_drop": 0, "locked_dropout": 0, "embed_dropout": 0}
    assert gpu_mix.awd_dropouts(1)["weight_drop"] < gpu_mix.awd_dropouts(16.5)["weight_drop"]
    # the bundle's 16.5 passes: above its 0.25 / 0.2, which had begun to overfit there
    assert gpu_mix.awd_dropouts(16.5)["weight_drop"] == pytest.approx(0.34, abs=0.01)
    assert gpu_mix.awd_dropouts(16.5)["locked_dropout"] == pytest.approx(0.27, abs=0.01)
    assert gpu_mix.awd_dropouts(64) == gpu_mix.awd_dropouts(1000) == gpu_mix.AWD


@pytest.mark.slow  # a search of the bundle in a child process
def test_generator_feed_runs_in_the_gpu_machines_python(tmp_path):
    config = tmp_path / "feed.yaml"
    config.write_text("pool:\n  channel_searches: 1\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "generator", "feed", "--model", str(BUNDLE),
                           "-n", "1", "--seed", "1", "--config", str(config)], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env=gpu_python(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("#neurobugurt") == 1

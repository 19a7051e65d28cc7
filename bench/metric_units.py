"""What the /retrain picture drew for the bundled model's training curve before issue 19 (nats per
token / ln 2, labelled bits per character) and the same lines in bits per character, the unit the
trainer logs now (`Streams.bits_per_char`: bits per token × tokens / characters of the training
text, separators counted).

    .venv/bin/python bench/metric_units.py data/bugurt/corpus.txt
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.config import BUNDLED_MODEL_DIR  # noqa: E402
from common.corpus import format_posts, read_split  # noqa: E402
from generator import modeldir  # noqa: E402

LAST_LINES = 20  # the end of the run: the lines the picture's last points come from


def main() -> None:
    _, vocab, _ = modeldir.load_model(BUNDLED_MODEL_DIR)
    train, _, _ = read_split(Path(sys.argv[1]))
    tokens, chars = len(vocab.encode_posts(train)), len(format_posts(train))
    last = [r for r in modeldir.read_metrics(BUNDLED_MODEL_DIR) if r.get("train_loss")]
    nats = sum(r["train_loss"] for r in last[-LAST_LINES:]) / LAST_LINES
    bits = nats / math.log(2)
    print(f"characters per token {chars / tokens:.3f}; last {LAST_LINES} lines: "
          f"{nats:.4f} nats per token, drawn as {bits:.3f}, in bits per character "
          f"{bits * tokens / chars:.3f}")


if __name__ == "__main__":
    main()

"""What a ranker may read of a candidate post: numbers the pool has or computes from the text.

Every judgement keeps these (as JSON) beside its post, so a ranker fitted later reads the same
features the review had. `likelihood` is the model's mean log-probability per character
(`Candidate.likelihood`); it is None for a post sampled on demand, whose score the sampler does not
hand back.
"""

from __future__ import annotations

from generator.tag import TAG
from generator.words import cohesion

# The features a ranker reads, in the order of its weights. The temperature is kept with each
# judgement but not read: a blind reading's real posts have none, and the bandit's arms lie
# too close together to tell posts apart.
NAMES = ("likelihood", "lines", "chars", "words_per_line", "longest_line", "cohesion",
         "repeated_words")


def lines_of(text: str) -> list[str]:
    """A post's lines: separators (`@`) and the tag left out."""
    return [line.strip() for line in text.split("\n")
            if line.strip() and line.strip() != "@" and line.strip() != TAG]


def features(text: str, likelihood: float | None, temperature: float | None
             ) -> dict[str, float | None]:
    """The features of one post, by name (NAMES, and the temperature it was sampled at)."""
    lines = lines_of(text)
    words = [w for line in lines for w in line.split()]
    return {
        "likelihood": likelihood,
        "temperature": temperature,
        "lines": float(len(lines)),
        "chars": float(sum(len(line) for line in lines)),
        "words_per_line": len(words) / max(1, len(lines)),
        "longest_line": float(max((len(line) for line in lines), default=0)),
        "cohesion": cohesion(lines),
        "repeated_words": 1.0 - len(set(words)) / max(1, len(words)),
    }

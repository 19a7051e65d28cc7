"""The generator's results on standard output, one line each, worded as the project's contract
fixes them (/work/shared/CONTRACT.md):

    train_summary: chars=<int> seconds=<float> chars_per_sec=<float> best_val_bpc=<float>
    bits_per_char: <float>

`train` prints the first as its last line, `eval` the second. `result_line` writes them and
`read_result` reads them back: the bot's retrain and the benchmarks read them only through it.
"""

from __future__ import annotations

TRAIN_SUMMARY = "train_summary"  # `train`'s
BITS_PER_CHAR = "bits_per_char"  # `eval`'s
FIELDS = {TRAIN_SUMMARY: ("chars", "seconds", "chars_per_sec", "best_val_bpc"),
          BITS_PER_CHAR: (BITS_PER_CHAR,)}
# how each value is printed: decimals enough for its unit (seconds to the millisecond, bits
# per character to 1e-4 in a summary and 1e-6 from eval)
_FORMATS = {"chars": "", "seconds": ".3f", "chars_per_sec": ".1f", "best_val_bpc": ".4f",
            BITS_PER_CHAR: ".6f"}


def result_line(name: str, values: dict[str, float]) -> str:
    """The line of result `name` from its FIELDS in `values` (others are left out): `name: v`
    for a result of one value named like it (eval's), else `name: key=v key=v …`."""
    if FIELDS[name] == (name,):
        return f"{name}: {values[name]:{_FORMATS[name]}}"
    return f"{name}: " + " ".join(f"{k}={values[k]:{_FORMATS[k]}}" for k in FIELDS[name])


def read_result(stdout: str, name: str) -> dict[str, float]:
    """The values of the last `name:` line of a command's standard output, as result_line
    wrote them; {} when it has none."""
    prefix = f"{name}:"
    for line in reversed(stdout.splitlines()):
        if line.startswith(prefix):
            rest = line[len(prefix):].split()
            if len(rest) == 1 and "=" not in rest[0]:
                return {name: float(rest[0])}
            return {k: float(v) for k, v in (kv.split("=", 1) for kv in rest)}
    return {}

"""Scripts that make data rather than measure it: the bugurt corpus (bugurt_corpus.py), blind
reading sheets and their scores (reading.py), posts of each selection system for a reading
(selection.py), and the one-call GPU run (gpu_run.py; its two-stage run is gpu_mix.py, the
steps both share gpu_steps.py). Each script is run as `.venv/bin/python tools/NAME.py`; the
benchmarks that measure are in bench/."""

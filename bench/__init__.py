"""Standing benchmarks: each script measures the product as it is and prints, or writes into
BENCHMARKS.md, the figures it regenerates. Each is run as `.venv/bin/python bench/NAME.py`;
scripts that make data (corpus, reading sheets, GPU runs) are in tools/, and what both share
(the machine's description, BENCHMARKS.md sections, fake servers) is in harness/."""

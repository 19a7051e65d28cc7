"""Stage 2: character-level LSTM over the corpus; samples finished posts (`python -m generator`)."""

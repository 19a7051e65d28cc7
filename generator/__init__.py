"""Stage 2: an LSTM language model over subword units (or characters) of the corpus; samples
finished posts (`python -m generator`)."""

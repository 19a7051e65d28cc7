"""Stage 3: Telegram/terminal chat, scheduled publishing, admin retraining (`python -m bot`)."""

"""Fake servers of outside services (Telegram Bot API, VK API) for offline tests and benchmarks."""

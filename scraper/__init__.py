"""Stage 1: VK wall → SQLite raw posts → cleaned corpus (`python -m scraper`)."""

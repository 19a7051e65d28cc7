"""What the tests, bench/ and tools/ run the product against: fake Telegram and VK servers
(fakes/), the bot as a thread or a child process (pipeline.py, peers.py), the test PostgreSQL
(pg.py) and where the repository and the shared data are (paths.py). Nothing here is shipped
behaviour; nothing here imports tests/."""

"""Logging set-up with secret redaction: a token registered here never reaches a log line.

Libraries log URLs that embed secrets (httpx logs every Bot API URL, which holds the bot
token), so the redaction sits on the handler and covers every logger.
"""

from __future__ import annotations

import logging
import sys

_SECRETS: set[str] = set()
_MASK = "***"


def register_secret(value: str) -> None:
    """Remember a secret so that it is masked in every later log record."""
    if value and len(value) >= 4:
        _SECRETS.add(value)


def redact(text: str) -> str:
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, _MASK)
    return text


class RedactingFilter(logging.Filter):
    """Formats the record once and replaces registered secrets in the result."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRETS:
            record.msg = redact(record.getMessage())
            record.args = None
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = redact(record.exc_text)
        return True


def setup_logging(level: int = logging.INFO) -> None:
    """Log to stderr (stdout belongs to command output) through the redacting filter."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs each request at INFO: noise for a long-polling bot.
    logging.getLogger("httpx").setLevel(logging.WARNING)

"""Every log line the functions and their libraries write, as CloudWatch would store it.

:class:`LogCapture` hangs one handler on the root logger, which every record
reaches: the functions' Powertools loggers (they propagate), ``stripe``,
``botocore``, ``urllib3`` and the rest. A record from a Powertools logger is
rendered with that logger's own JSON formatter (its appended keys, ``extra``
fields and formatted traceback included), so the captured line is the line
Lambda ships; any other record is rendered with its traceback and every
attribute a caller attached. A secret that reaches a record in any way ends up
in :attr:`LogCapture.lines`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from aws_lambda_powertools.logging.formatter import BasePowertoolsFormatter

# What LogRecord itself carries; anything else on a record came from the caller.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}
_PLAIN = logging.Formatter("%(levelname)s %(name)s %(message)s")
# The test doubles' own loggers: moto's request mocking, the stand-in's and the
# gateway's servers. None of them runs in a Lambda function.
TEST_DOUBLE_LOGGERS = ("responses", "moto", "werkzeug", "sandbox")


def _powertools_formatter(logger_name: str) -> logging.Formatter | None:
    """The JSON formatter of the Powertools logger that owns ``logger_name``, if any."""
    logger: logging.Logger | None = logging.getLogger(logger_name)
    while logger is not None:
        for handler in logger.handlers:
            if isinstance(handler.formatter, BasePowertoolsFormatter):
                return handler.formatter
        logger = logger.parent
    return None


class _Recorder(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__(level=logging.NOTSET)
        self.lines = lines

    def filter(self, record: logging.LogRecord) -> bool:
        # Powertools adds a filter to every root handler when a new service logger is
        # made, to drop that service's propagated records: this handler must see them.
        return True

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] in TEST_DOUBLE_LOGGERS:
            return
        formatter = _powertools_formatter(record.name) or _PLAIN
        line = formatter.format(record)
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRIBUTES}
        if extras:
            line += " " + json.dumps(extras, default=repr, sort_keys=True)
        self.lines.append(line)


@dataclass
class LogCapture:
    """The captured lines, and the loggers' levels to restore afterwards."""

    lines: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join(self.lines)

    def containing(self, needle: str) -> list[str]:
        return [line for line in self.lines if needle in line]

    def leaks(self, needles: Iterable[str]) -> dict[str, list[str]]:
        """For each needle found: the lines holding it (also with spaces or dashes inside)."""
        found: dict[str, list[str]] = {}
        for needle in needles:
            squeezed = re.sub(r"[\s-]", "", needle)
            hits = [
                line
                for line in self.lines
                if needle in line or (squeezed and squeezed in re.sub(r"[\s-]", "", line))
            ]
            if hits:
                found[needle] = hits
        return found


def _powertools_loggers() -> list[logging.Logger]:
    return [
        logger
        for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
        and any(isinstance(h.formatter, BasePowertoolsFormatter) for h in logger.handlers)
    ]


@contextmanager
def capture_logs(level: int = logging.DEBUG) -> Iterator[LogCapture]:
    """Capture every record at ``level`` and above, from every logger, inside the block.

    The root logger (Lambda's application log level) and the Powertools loggers
    (``POWERTOOLS_LOG_LEVEL``, the template's ``LogLevel``) are set to ``level``
    for the block; a library logger with a level of its own keeps it.
    """
    capture = LogCapture()
    recorder = _Recorder(capture.lines)
    root = logging.getLogger()
    touched = [root, *_powertools_loggers()]
    saved = [(logger, logger.level) for logger in touched]
    for logger in touched:
        logger.setLevel(level)
    root.addHandler(recorder)
    try:
        yield capture
    finally:
        root.removeHandler(recorder)
        for logger, previous in saved:
            logger.setLevel(previous)

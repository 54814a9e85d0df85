"""Malformed requests are the client's mistake: one WARNING line in the log, not an ERROR with a traceback.

BentoML logs every exception its API wrapper turns into a response with `log_exception`, at ERROR
with the full traceback and pydantic's `input_value` (a person's form field). This filter on the
logger it uses (added by http_api/patches.py) rewrites those records when the exception is a client
error (a validation error, or a BentoML error with a 4xx status); server errors keep their traceback.
"""

from __future__ import annotations

import logging

from bentoml.exceptions import BentoMLException
from pydantic import ValidationError


class OneLineClientErrors(logging.Filter):
    """Turns BentoML's 'Exception on PATH [METHOD]' for a client error into one WARNING line without inputs."""

    logger_name = "bentoml._internal.server.http_app"
    """The logger of `bentoml._internal.server.http_app.log_exception`, which BentoML's API wrapper calls."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, ValidationError):
            problem = "; ".join(
                f"{'.'.join(str(part) for part in item['loc']) or 'request'}: {item['msg']}"
                for item in error.errors(include_input=False, include_url=False)
            )
        elif isinstance(error, BentoMLException) and 400 <= error.error_code.value < 500:
            problem = str(error)
        else:
            return True
        path, method = record.args if isinstance(record.args, tuple) and len(record.args) == 2 else ("?", "?")
        record.msg, record.args = "malformed request %s %s: %s", (method, path, problem)
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info, record.exc_text = None, None
        return True


"""Logging: one JSON object per line on stdout (a console format on a terminal).

Levels are trace < debug < info < warn < error. Every line of a request carries its corrId;
tenant and callback id are bound through the request and the monitor. Phone numbers are
masked wherever they appear, ``userData`` is never written (nor the values of a database
statement or row), libraries write only from warn up, the console format escapes control
characters, lines are capped at ``log_max_len``, and a line that cannot be written is counted
in ``LOGGING_FAILURE``.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from dialback.kit.context import corr_id_var, log_context
from dialback.kit.timefmt import utc_iso
from dialback.settings import LOG_LEVELS, canonical_log_level

TRACE = 5
logging.addLevelName(TRACE, "TRACE")
# No line shows a source location, thread or process: spare every record the stack walk and
# lookups (the logging HOWTO's "Optimization" section).
logging._srcfile = None
logging.logThreads = False
logging.logProcesses = False
logging.logMultiprocessing = False
logging.addLevelName(logging.WARNING, "WARN")

LEVELS = {
    "trace": TRACE,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}
LEVEL_NAMES = {v: k for k, v in LEVELS.items()} | {logging.CRITICAL: "error"}

# Runs of 7+ digits, optionally starting with + and broken by spaces, dots, dashes or brackets.
_PHONE = re.compile(r"(?<![0-9A-Za-z])\+?\d(?:[\s().-]{0,2}\d){6,}(?![0-9A-Za-z])")
# Identifiers are never phone numbers; masking them would break log searches.
_ID_FIELDS = frozenset({"corrId", "callbackId", "tenantId", "id", "keyId"})
# A client's IP address (web.client.client_address) looks like a phone number to _PHONE; in
# this field it is kept as it is when it is one, and masked like any text when it is not.
_ADDRESS_FIELD = "clientAddress"
_NEVER_LOGGED = frozenset(
    {"userData", "user_data", "phoneNumber", "phone_number", "password", "apiKey"}
)
_STD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


# What a database error quotes of the values it was given (SQLAlchemy's statement parameters;
# PostgreSQL's failing row, key values and JSON input; asyncpg's refused argument), and what a
# pydantic error quotes of its input (a malformed outcome event): userData and numbers. The
# statement and the server's own words stay, for the operator.
_DB_VALUES = (
    (re.compile(r"\[parameters: [^\n]*"), "[parameters hidden]"),
    (re.compile(r"(Failing row contains )[^\n]*"), r"\1(values hidden)"),
    (re.compile(r"(Key \([^\n]*?\)=)\([^\n]*"), r"\1(values hidden)"),
    (re.compile(r"(JSON data, line \d+: )[^\n]*"), r"\1(values hidden)"),
    (re.compile(r"(query argument \$\d+: )[^\n]*"), r"\1(value hidden)"),
    (re.compile(r"(input_value=)[^\n]*?(, input_type=\w+\]|$)", re.M), r"\1(value hidden)\2"),
)
_DB_VALUE_HINTS = (
    "[parameters: ",
    "Failing row",
    "Key (",
    "JSON data",
    "query argument",
    "input_value=",
)
# Loggers below warn are written only for dialback's own: a library's debug and info lines
# (aiosqlite's every statement, with its values) are not written at any level.
_OWN_LOGGERS = "dialback"
_LIBRARIES = ("aiosqlite", "asyncpg", "sqlalchemy", "redis", "httpx", "httpcore", "uvicorn")


def scrub_db_values(text: str) -> str:
    """``text`` without the values a database error quotes (statement parameters, rows)."""
    if not any(hint in text for hint in _DB_VALUE_HINTS):
        return text
    for pattern, repl in _DB_VALUES:
        text = pattern.sub(repl, text)
    return text


def _own_or_warning(record: logging.LogRecord) -> bool:
    if record.levelno >= logging.WARNING:
        return True
    name = record.name
    return name == _OWN_LOGGERS or name.startswith(_OWN_LOGGERS + ".")


def mask_phone_numbers(text: str) -> str:
    """Replace every phone-number-like run of digits, keeping its first 3 and last 2 chars."""

    def _mask(m: re.Match[str]) -> str:
        s = m.group(0)
        return s[:3] + "*" * (len(s) - 5) + s[-2:]

    return _PHONE.sub(_mask, text)


# Bound fields repeat (a tenant's name on each of its requests): mask each value once.
_masked_values: dict[str, str] = {}


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def masked_context(context: Mapping[str, Any]) -> dict[str, Any]:
    """Bound fields as every line writes them: strings masked, identifiers kept."""
    return _masked(context)


def _masked(context: Mapping[str, Any]) -> dict[str, Any]:
    ev: dict[str, Any] = {}
    for key, value in context.items():
        if isinstance(value, str) and key not in _ID_FIELDS:
            masked = _masked_values.get(value)
            if masked is None:
                if len(_masked_values) >= 10_000:
                    _masked_values.clear()
                masked = _masked_values[value] = mask_phone_numbers(value)
            value = masked
        ev[key] = value
    return ev


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON object, masked and capped at ``max_len`` bytes."""

    def __init__(self, max_len: int) -> None:
        super().__init__()
        self.max_len = max_len

    def event(self, record: logging.LogRecord) -> dict[str, Any]:
        """The masked fields of one record."""
        msg = record.getMessage()
        if record.exc_info and record.levelno >= logging.ERROR:
            msg = f"{msg}\n{self.formatException(record.exc_info)}"
        elif record.exc_info:
            msg = f"{msg}: {record.exc_info[1]!r}"
        ev: dict[str, Any] = {
            "ts": utc_iso(record.created),
            "level": LEVEL_NAMES.get(record.levelno, record.levelname.lower()),
            "logger": record.name,
            "msg": mask_phone_numbers(scrub_db_values(msg)),
        }
        corr = corr_id_var.get()
        if corr:
            ev["corrId"] = corr
        ev.update(_masked(log_context.get()))
        for key, value in record.__dict__.items():
            if key in _STD_ATTRS or key.startswith("_") or key in _NEVER_LOGGED:
                continue
            if (
                isinstance(value, str)
                and key not in _ID_FIELDS
                and not (key == _ADDRESS_FIELD and _is_ip(value))
            ):
                value = mask_phone_numbers(scrub_db_values(value))
            ev[key] = value
        return ev

    def format(self, record: logging.LogRecord) -> str:
        return self.render(self.event(record))

    def render(self, ev: dict[str, Any]) -> str:
        """``ev`` as one JSON line of at most ``max_len`` bytes."""
        line = orjson.dumps(ev, default=str)
        if len(line) <= self.max_len:
            return line.decode()
        # Too long: shorten long extra fields first, then the message, then keep the core.
        ev["truncated"] = True
        for key, val in ev.items():
            if key != "msg" and isinstance(val, str) and len(val) > 200:
                ev[key] = val[:200] + "…"
        line = orjson.dumps(ev, default=str)
        if len(line) > self.max_len:
            over = len(line) - self.max_len + 8
            ev["msg"] = ev["msg"][: max(0, len(ev["msg"]) - over)] + "…"
            line = orjson.dumps(ev, default=str)
        if len(line) > self.max_len:
            keep: dict[str, Any] = {
                k: ev[k] for k in ("ts", "level", "logger", "corrId") if k in ev
            }
            keep["msg"] = ev["msg"][: self.max_len // 2]
            keep["truncated"] = True
            line = orjson.dumps(keep)
        return line.decode()


# Everything a terminal could take for a line break, a colour or a reordering of the line:
# C0 controls, DEL, C1 controls (NEL, CSI), Unicode line/paragraph separators, bidi controls.
_CONSOLE_ESCAPES: dict[int, str] = {
    c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))
} | {
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
    **{c: f"\\u{c:04x}" for c in (0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A))},
}


def escape_controls(text: str) -> str:
    """``text`` with control characters written as escapes (``\\n``, ``\\x1b``): one line."""
    return text.translate(_CONSOLE_ESCAPES)


class ConsoleFormatter(JsonFormatter):
    """A human format for terminals: time, level, logger, message, then key=value fields.

    A record is always one line: control characters anywhere in it (a client's value, a
    traceback's line breaks) are written as escapes, so no value can forge a line or colour one.
    """

    def format(self, record: logging.LogRecord) -> str:
        ev = self.event(record)
        head = (
            f"{ev.pop('ts')[11:23]} {ev.pop('level').upper():5} {ev.pop('logger')}: {ev.pop('msg')}"
        )
        tail = " ".join(f"{k}={v}" for k, v in ev.items())
        return escape_controls(f"{head}  {tail}" if tail else head)[: self.max_len]


RequestLine = tuple[float, int, str, str, int, float, str, Mapping[str, str]]


class StdoutHandler(logging.Handler):
    """Writes formatted lines to a file descriptor; counts lines it could not write.

    Request lines arrive as their fields (``write_request_lines``), already batched by the
    request observer (``http_metrics.RequestObservability``): they are rendered straight to
    JSON and written in one system call.
    """

    def __init__(self, fd: int = 1, on_failure: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.fd = fd
        self.on_failure = on_failure

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._write((self.format(record) + "\n").encode("utf-8", "replace"))
        except Exception:
            if self.on_failure is not None:
                self.on_failure()

    def write_request_lines(self, lines: Sequence[RequestLine]) -> None:
        """Render request lines and write them now, together."""
        if not lines:
            return
        with self.lock:  # type: ignore[union-attr]
            try:
                self._write(self._render(lines))
            except Exception:
                if self.on_failure is not None:
                    self.on_failure()

    def _render(self, lines: Sequence[RequestLine]) -> bytes:
        formatter = self.formatter
        assert isinstance(formatter, JsonFormatter)
        max_len = formatter.max_len
        out = []
        for created, level, method, route, status, ms, corr, context in lines:
            # The fields, in the order, of JsonFormatter.event; method and route come from
            # dialback's own route table, never from the client, so need no masking.
            ev: dict[str, Any] = {
                "ts": utc_iso(created),
                "level": LEVEL_NAMES[level],
                "logger": "dialback.request",
                "msg": f"{method} {route} {status} {ms:.1f}ms",
            }
            ev.update(_masked(context))
            ev["route"] = route
            ev["status"] = status
            ev["durationMs"] = round(ms, 2)
            ev["corrId"] = corr
            line = orjson.dumps(ev, default=str)
            if len(line) >= max_len:
                line = formatter.render(ev).encode("utf-8", "replace")
            out.append(line)
        out.append(b"")
        return b"\n".join(out)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]


_request_logger = logging.getLogger("dialback.request")


class RequestLineSink(logging.Handler):
    """A handler that also takes the request lines written past ``logging`` (the fast path):
    the ring of recent errors (``observability.recent_log``)."""

    def keep_request_line(self, line: RequestLine) -> None:
        """One request line at or above the handler's level."""
        raise NotImplementedError


_sink: RequestLineSink | None = None


def set_request_line_sink(sink: RequestLineSink | None) -> None:
    """Hand the fast path's request lines at or above ``sink``'s level to ``sink`` as well
    (the request line's direct write stays on while it listens beside the stdout handler)."""
    global _sink
    _sink = sink


def _plain_json_handler() -> StdoutHandler | None:
    """dialback's handler when it writes JSON and is the only handler or filter that a request
    line meets (beside the request-line sink, which the fast path feeds itself); otherwise
    None."""
    handler = _handler
    if handler is None or type(handler.formatter) is not JsonFormatter:
        return None
    handlers = logging.root.handlers
    if handlers != [handler] and not (
        len(handlers) == 2 and handler in handlers and _sink in handlers
    ):
        return None
    if logging.root.filters:
        return None
    lg: logging.Logger | None = _request_logger
    while lg is not None and lg is not logging.root:
        if lg.handlers or lg.filters:
            return None
        lg = lg.parent
    return handler


def log_request(
    level: int,
    method: str,
    route: str,
    status: int,
    elapsed: float,
    corr: str,
    created: float | None = None,
    context: Mapping[str, str] | None = None,
) -> None:
    """Write a request line now: ``POST /route 200 3.1ms`` with route, status, durationMs, corrId."""
    if not _request_logger.isEnabledFor(level):
        return
    log_request_lines(
        [
            (
                time.time() if created is None else created,
                level,
                method,
                route,
                status,
                elapsed * 1000,
                corr,
                log_context.get() if context is None else context,
            )
        ]
    )


def log_request_lines(lines: Sequence[RequestLine]) -> None:
    """Write a batch of request lines now, each only if its level is enabled.

    With dialback's JSON handler as the only handler (production), the lines' fields are handed
    to it, rendered straight to JSON and written in one system call
    (``StdoutHandler.write_request_lines``): a LogRecord and the generic formatter on every
    request would cost more than the rest of the request's instrumentation together. Otherwise
    each goes through ``logging`` as usual.
    """
    enabled = _request_logger.isEnabledFor
    handler = _plain_json_handler()
    if handler is not None:
        handler.write_request_lines([line for line in lines if enabled(line[1])])
        sink = _sink
        if sink is not None and sink in logging.root.handlers:
            for line in lines:
                if line[1] >= sink.level and enabled(line[1]):
                    sink.keep_request_line(line)
        return
    for _created, level, method, route, status, ms, corr, _context in lines:
        if enabled(level):
            _request_logger.log(
                level,
                "%s %s %d %.1fms",
                method,
                route,
                status,
                ms,
                extra={
                    "route": route,
                    "status": status,
                    "durationMs": round(ms, 2),
                    "corrId": corr,
                },
            )


_handler: StdoutHandler | None = None


def setup_logging(
    level: str = "info",
    *,
    max_len: int = 2048,
    fmt: str = "auto",
    on_failure: Callable[[], None] | None = None,
    fd: int = 1,
) -> StdoutHandler:
    """Route every logger (dialback's, uvicorn's, libraries') through one stdout handler."""
    global _handler
    root = logging.getLogger()
    for h in list(root.handlers):
        h.flush()
        root.removeHandler(h)
    handler = StdoutHandler(fd, on_failure)
    handler.addFilter(_own_or_warning)
    console = fmt == "console" or (fmt == "auto" and os.isatty(fd))
    handler.setFormatter(ConsoleFormatter(max_len) if console else JsonFormatter(max_len))
    root.addHandler(handler)
    set_level(level)
    # dialback writes its own request line; uvicorn's access log would duplicate it.
    logging.getLogger("uvicorn.access").disabled = True
    _handler = handler
    return handler


def set_on_failure(on_failure: Callable[[], None]) -> None:
    """Count write failures of the installed handler (once the metrics exist)."""
    if _handler is not None:
        _handler.on_failure = on_failure


def set_level(level: str) -> None:
    """Change the level of every logger at run time (any case, ``WARNING`` and the like too)."""
    level = canonical_log_level(level)
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LOG_LEVELS)} (any case)")
    logging.getLogger().setLevel(LEVELS[level])
    # Libraries' lines below warn are not written (``_own_or_warning``); not creating them
    # spares the work.
    quiet = max(LEVELS[level], logging.WARNING)
    for noisy in ("asyncio", *_LIBRARIES):
        logging.getLogger(noisy).setLevel(quiet)


def change_level(level: str) -> tuple[str, str]:
    """Set the run-time level (``set_level``) and say so in the log: the new level's canonical
    name and the previous one (``PUT /admin/v1/logging`` and the Callback UI both call it)."""
    previous = current_level()
    set_level(level)
    now = current_level()
    logging.getLogger("dialback.admin").warning("log level changed from %s to %s", previous, now)
    return now, previous


def current_level() -> str:
    """The root logger's level name."""
    return LEVEL_NAMES.get(logging.getLogger().level, "info")

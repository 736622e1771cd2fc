"""Errors that reach the SQL user as one clean message (plus an optional hint)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class CerebroError(Exception):
    """A user-facing error: ``message`` names the problem, ``hint`` says what is accepted."""

    def __init__(self, message: str, hint: str | None = None, sqlstate: str = "22023") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.sqlstate = sqlstate


PREFIX = "cerebro: "


def _sql_error_class(plpy: Any) -> type:
    """A ``plpy.Error`` subclass that PL/Python prints as ``ERROR:  cerebro: <message>``.

    PL/Python prefixes the message with the exception's module and class name unless the
    module is ``builtins``; subclassing ``plpy.Error`` keeps the HINT and SQLSTATE fields.
    """
    cls = getattr(plpy, "_cerebro_error_class", None)
    if cls is None:
        cls = type("cerebro", (plpy.Error,), {"__module__": "builtins"})
        with contextlib.suppress(AttributeError):
            plpy._cerebro_error_class = cls
    return cls


def sql_errors(fn: F) -> F:
    """Report a :class:`CerebroError` as one clean SQL error (message, hint, SQLSTATE 22023).

    Expects ``plpy`` as the first argument of ``fn`` (every entry point gets it that way). An
    error from a nested SQL statement we ran ourselves is passed on with its own message.
    """

    @functools.wraps(fn)
    def wrapper(plpy: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(plpy, *args, **kwargs)
        except CerebroError as e:
            message, hint, sqlstate = e.message, e.hint, e.sqlstate
        except plpy.SPIError as e:
            message = str(e.args[0]) if e.args else str(e)
            if not message.startswith(PREFIX):
                raise
            message, hint = message[len(PREFIX) :], getattr(e, "hint", None)
            sqlstate = getattr(e, "sqlstate", None) or "22023"
        err = _sql_error_class(plpy)(message)
        err.hint = hint
        err.sqlstate = sqlstate
        raise err

    return wrapper  # type: ignore[return-value]

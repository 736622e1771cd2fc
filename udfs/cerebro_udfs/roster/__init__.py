"""The built-in model roster: name -> build(config) returning a compiled keras.Model."""

from __future__ import annotations

from typing import Any, Callable

from . import mlp

ROSTER: dict[str, Callable[[dict[str, Any]], Any]] = {"mlp": mlp.build}

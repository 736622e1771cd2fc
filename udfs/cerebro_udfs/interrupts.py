"""Let query cancel and backend termination reach Keras training inside PL/Python.

PostgreSQL handles SIGINT (pg_cancel_backend, statement_timeout) and SIGTERM
(pg_terminate_backend) by setting flags that C code checks; pure Python code inside PL/Python
never checks them, so a long ``model.fit`` could not be cancelled. The backend's own globals
are readable through ctypes, so a Keras callback looks at them between batches and raises;
PostgreSQL then processes the pending cancel as usual. Outside a backend this is a no-op.
"""

from __future__ import annotations

import contextlib
import ctypes
from typing import Any

_FLAGS: list[Any] | None = None


def _flags() -> list[Any]:
    global _FLAGS
    if _FLAGS is None:
        found = []
        try:
            main = ctypes.CDLL(None)
            for name in ("QueryCancelPending", "ProcDiePending"):
                with contextlib.suppress(ValueError):
                    found.append(ctypes.c_int.in_dll(main, name))
        except OSError:
            pass
        _FLAGS = found
    return _FLAGS


def pending() -> bool:
    return any(f.value for f in _flags())


class Interrupted(Exception):
    pass


def callback() -> Any:
    import keras

    class CheckInterrupts(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if pending():
                raise Interrupted(
                    "canceled by PostgreSQL (cancel request, statement_timeout or termination)"
                )

        on_test_batch_end = on_train_batch_end

    return CheckInterrupts()

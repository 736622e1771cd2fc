"""Building Keras models from the catalog: roster entries and registered custom scripts."""

from __future__ import annotations

import ctypes
import hashlib
import json
import threading
import traceback
from collections.abc import Callable
from typing import Any, Literal

from .errors import CerebroError
from .roster import ROSTER

RESERVED_PARAMS = {"dataset"}
BUILD_TIMEOUT_S = 300.0
_SCRIPTS: dict[str, Callable[[dict], Any]] = {}


def spec_key(spec: dict[str, Any]) -> str:
    """Identity of a model definition: a changed script never reuses a cached model."""
    h = hashlib.sha256()
    h.update(
        json.dumps(
            [spec.get("name"), spec.get("kind"), spec.get("entry_point"), spec.get("source")],
            sort_keys=True,
        ).encode()
    )
    return h.hexdigest()[:16]


def load_entry_point(spec: dict[str, Any], timeout: float | None = None) -> Callable[[dict], Any]:
    name = spec.get("name", "?")
    if spec.get("kind") == "roster":
        fn = ROSTER.get(spec.get("entry_point") or name)
        if fn is None:
            raise CerebroError(
                f"roster model {name!r} is not known", hint=f"roster: {', '.join(sorted(ROSTER))}"
            )
        return fn
    key = spec_key(spec)
    if key in _SCRIPTS:
        return _SCRIPTS[key]
    source = spec.get("source") or ""
    entry = spec.get("entry_point") or "build"
    try:
        code = compile(source, f"<cerebro model {name}>", "exec")
    except SyntaxError as e:
        raise CerebroError(
            f"model script {name!r} does not compile: line {e.lineno}: {e.msg}",
            hint="fix the Python source and register it again",
        ) from None
    namespace: dict[str, Any] = {"__name__": f"cerebro_model_{name}"}
    try:
        with _deadline(timeout or BUILD_TIMEOUT_S, f"model script {name!r} at import"):
            exec(code, namespace)
    except CerebroError:
        raise
    except BaseException as e:  # noqa: BLE001 - user code may raise anything
        raise CerebroError(f"model script {name!r} raised while loading: {_describe(e)}") from None
    fn = namespace.get(entry)
    if not callable(fn):
        raise CerebroError(
            f"model script {name!r} has no function {entry!r}",
            hint="entry_point names a function def build(config) -> keras.Model",
        )
    _SCRIPTS[key] = fn
    return fn


def build_model(
    spec: dict[str, Any],
    params: dict[str, Any],
    dataset: dict[str, Any],
    seed: int,
    timeout: float | None = None,
) -> Any:
    """Build and compile a fresh model for ``params``; variables initialised from ``seed``."""
    import keras

    name = spec.get("name", "?")
    timeout = timeout or BUILD_TIMEOUT_S
    fn = load_entry_point(spec, timeout)
    config = dict(params)
    config["dataset"] = dataset
    keras.utils.set_random_seed(int(seed) % (2**32))
    try:
        with _deadline(timeout, f"model {name!r} build"):
            model = fn(config)
    except CerebroError:
        raise
    except BaseException as e:  # noqa: BLE001
        raise CerebroError(f"model {name!r} failed to build: {_describe(e)}") from None
    if not isinstance(model, keras.Model):
        raise CerebroError(
            f"model {name!r}: entry point returned {type(model).__name__}, not a keras.Model",
            hint="return a compiled keras.Model (call model.compile(...) first)",
        )
    if not getattr(model, "compiled", False) or model.optimizer is None:
        raise CerebroError(
            f"model {name!r}: entry point returned a model that is not compiled",
            hint="call model.compile(optimizer=..., loss=...) before returning",
        )
    if not model.built:
        import numpy as np

        try:
            model(np.zeros((1, *dataset["feature_shape"]), dtype="float32"))
        except Exception as e:  # noqa: BLE001
            raise CerebroError(
                f"model {name!r} does not accept inputs of shape "
                f"{dataset['feature_shape']}: {_describe(e)}"
            ) from None
    model.optimizer.build(model.trainable_variables)
    return model


def dataset_meta(row: dict[str, Any]) -> dict[str, Any]:
    """What a model's build function learns about its data."""
    classes = row.get("classes")
    if isinstance(classes, str):
        classes = json.loads(classes)
    enc = row.get("encoding") or {"kind": "numeric"}
    if isinstance(enc, str):
        enc = json.loads(enc)
    return {
        "name": row.get("name"),
        "feature_shape": list(row["feature_shape"]),
        "task": row["task"],
        "num_classes": len(classes) if classes is not None else None,
        "classes": classes,
        "input": enc["kind"],  # numeric | image | text
        "vocabulary_size": enc.get("vocabulary_size"),  # text: token ids are < this
        "max_length": enc.get("max_length"),  # text: tokens per row
    }


def training_config(
    ds: dict[str, Any],
    params: dict[str, Any],
    seed: int,
    partition: int | None,
    epoch: int,
    config_id: int | None,
) -> dict[str, Any]:
    """The ``config`` direct argument of the training/evaluation aggregates.

    ``ds`` is a ``cerebro.datasets`` row with ``version`` (its creation time as text): the
    partition cache key changes when a dataset of the same name is loaded again.
    """
    cfg = {
        "params": params,
        "seed": seed,
        "epoch": epoch,
        "config_id": config_id,
        "dataset": dataset_meta(ds),
        "dataset_id": ds["dataset_id"],
    }
    if partition is not None:
        cfg["partition"] = partition
        cfg["cache_key"] = f"{ds['dataset_id']}:{partition}:{ds['version']}"
    return cfg


EXAMPLE_DATASET = {
    "name": None,
    "feature_shape": [8],
    "task": "classification",
    "num_classes": 2,
    "classes": [0, 1],
    "input": "numeric",
    "vocabulary_size": None,
    "max_length": None,
}


def _describe(e: BaseException) -> str:
    tb = traceback.extract_tb(e.__traceback__)
    where = ""
    for frame in reversed(tb):
        if frame.filename.startswith("<cerebro model"):
            where = f" (line {frame.lineno})"
            break
    return f"{type(e).__name__}: {e}{where}"


class BuildTimeout(BaseException):
    pass


class _deadline:
    """Raise BuildTimeout in this thread if the block runs longer than ``seconds``.

    PostgreSQL's statement_timeout cannot interrupt pure Python code inside PL/Python, so a
    script that loops forever would pin the backend; an asynchronous exception ends it.
    (Blocking C calls are not interrupted; they end when they return.)
    """

    def __init__(self, seconds: float, what: str) -> None:
        self.seconds, self.what = seconds, what
        self.timer: threading.Timer | None = None
        self.fired = False
        self.done = False
        self.lock = threading.Lock()

    def __enter__(self) -> _deadline:
        target = threading.get_ident()

        def fire() -> None:
            with self.lock:
                if self.done:
                    return
                self.fired = True
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(target), ctypes.py_object(BuildTimeout)
                )

        self.timer = threading.Timer(self.seconds, fire)
        self.timer.daemon = True
        self.timer.start()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Literal[False]:
        assert self.timer is not None
        with self.lock:
            self.done = True
        self.timer.cancel()
        if exc_type is BuildTimeout or (self.fired and exc_type is not None):
            raise CerebroError(
                f"{self.what} did not finish within {self.seconds:g} s",
                hint="the script must return a compiled model promptly",
            )
        return False

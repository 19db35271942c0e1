"""The handler loader: handler string to callable, with the reference client's init errors."""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import sys
from enum import Enum
from typing import Any, Callable

from . import errors
from .errors import RuntimeFault


class Kind(Enum):
    """How the pipeline drives a handler; decided once, at init."""

    SYNC = "def"
    ASYNC = "async def"
    GENERATOR = "generator"
    ASYNC_GENERATOR = "async generator"
    WRITER = "writer"


def load(spec: str) -> Callable[..., Any]:
    """Import the handler named by `spec` (`module.func`, `pkg.mod.func`, `dir/mod.func`, or
    `path/to/file.py:func`, the form `aruntime serve` takes). Raises RuntimeFault (init errors)."""
    task_root = os.environ.get("LAMBDA_TASK_ROOT")
    if task_root and task_root not in sys.path:
        sys.path.insert(0, task_root)
    spec = _from_file_form(spec, task_root or os.getcwd())
    try:
        modname, fname = spec.rsplit(".", 1)
    except ValueError as e:
        raise RuntimeFault(errors.MALFORMED_HANDLER_NAME, f"Bad handler '{spec}': {e}") from None
    if modname.split(".")[0] in sys.builtin_module_names:
        raise RuntimeFault(errors.BUILT_IN_MODULE_CONFLICT,
                           f"Cannot use built-in module {modname} as a handler module")
    try:
        module = importlib.import_module(modname.replace("/", "."))
    except ImportError as e:
        raise RuntimeFault(errors.IMPORT_MODULE_ERROR,
                           f"Unable to import module '{modname}': {e}") from None
    except SyntaxError as e:
        trace = [f'  File "{e.filename}" Line {e.lineno}\n    {e.text}']
        raise RuntimeFault(errors.USER_CODE_SYNTAX_ERROR,
                           f"Syntax error in module '{modname}': {e}", trace) from None
    try:
        return getattr(module, fname)
    except AttributeError:
        raise RuntimeFault(errors.HANDLER_NOT_FOUND,
                           f"Handler '{fname}' missing on module '{modname}'") from None


def _from_file_form(spec: str, base: str) -> str:
    """`path/to/file.py:func` (relative to `base`) as `file.func`, with the file's folder put
    first on sys.path; any other spec unchanged. A missing file fails as a missing module would,
    before another module of that name elsewhere on sys.path could be imported instead."""
    path, sep, func = spec.rpartition(":")
    if not sep or not path.endswith(".py"):
        return spec
    file = os.path.join(base, path)
    if not os.path.isfile(file):
        raise RuntimeFault(errors.IMPORT_MODULE_ERROR,
                           f"Unable to import module '{path}': No such file: '{os.path.abspath(file)}'")
    folder = os.path.dirname(os.path.abspath(file))
    if folder in sys.path:
        sys.path.remove(folder)
    sys.path.insert(0, folder)
    return f"{os.path.basename(path)[:-3]}.{func or 'handler'}"


def _layers(handler: Any) -> list[Any]:
    """`handler` and what it stands for, outermost first: a callable instance's `__call__`, a
    bound method's function, a `functools.partial`'s function, a decorator's wrapped function
    (`__wrapped__`, set by `functools.wraps`)."""
    out: list[Any] = []
    seen: set[int] = set()
    target = handler
    while target is not None and id(target) not in seen:
        seen.add(id(target))
        out.append(target)
        if isinstance(target, functools.partial):
            target = target.func
        elif inspect.ismethod(target):
            target = target.__func__
        elif getattr(target, "__wrapped__", None) is not None:
            target = target.__wrapped__
        elif not inspect.isfunction(target) and not isinstance(target, type) and callable(target):
            target = getattr(type(target), "__call__", None)
        else:
            target = None
    return out


def stream_options(handler: Callable[..., Any]) -> Any:
    """What `@aruntime.streaming` attached to the handler, or to what it wraps; None if nothing."""
    for layer in _layers(handler):
        options = getattr(layer, "__aruntime_streaming__", None)
        if options is not None:
            return options
    return None


def kind_of(handler: Callable[..., Any]) -> Kind:
    """How to drive `handler`, decided once at init.

    The handler's own kind wins where it is definite: a generator, async generator or coroutine
    function, seen through a callable instance's `__call__`, a bound method or a
    `functools.partial`. A plain function that wraps another (`functools.wraps`: Powertools,
    tracing decorators) is called as a sync handler, and what it returns decides at call time
    (a coroutine is awaited, a generator streamed). Only a writer needs its kind from the
    wrapped function: `@streaming` on an `async def handler(event, context, stream)` whose
    wrapper is a plain function.
    """
    layers = _layers(handler)
    own = next((layer for layer in layers if inspect.isfunction(layer)), handler)
    if inspect.isasyncgenfunction(own):
        return Kind.ASYNC_GENERATOR
    if inspect.isgeneratorfunction(own):
        return Kind.GENERATOR
    if stream_options(handler) is not None:
        if any(inspect.iscoroutinefunction(layer) for layer in layers):
            return Kind.WRITER
        if not any(inspect.isgeneratorfunction(layer) or inspect.isasyncgenfunction(layer)
                   for layer in layers):
            raise RuntimeFault(
                "Runtime.InvalidStreamingHandler",
                f"A writer-style streaming handler must be 'async def handler(event, context, "
                f"stream)' or a generator; got {handler!r}")
    if inspect.iscoroutinefunction(own):
        return Kind.ASYNC
    return Kind.SYNC

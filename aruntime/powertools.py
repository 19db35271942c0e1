"""Powertools for AWS Lambda, right per invocation when invocations run concurrently.

Powertools' `Logger` keeps the keys `append_keys` and `@inject_lambda_context` add (the request
id among them) in one dict shared by every invocation: under `AWS_LAMBDA_MAX_CONCURRENCY` > 1 a
record then carries whichever invocation appended last. Its `thread_safe_append_keys` keeps
keys in a context variable instead, which aruntime gives each invocation its own copy of.
`InvocationFormatter` is Powertools' own formatter with one change, through the formatter hook
Powertools documents (`Logger(logger_formatter=...)`): keys appended while an invocation runs
concurrently with others go to that invocation's context. With one invocation at a time, and
outside invocations (at init), it behaves exactly as `LambdaPowertoolsFormatter`.

    from aws_lambda_powertools import Logger
    from aruntime.powertools import InvocationFormatter

    logger = Logger(service="payment", logger_formatter=InvocationFormatter())

    @logger.inject_lambda_context
    async def handler(event, context): ...

Imported only by handler code that asks for it; needs `aws-lambda-powertools`.
"""

from __future__ import annotations

from typing import Any, Iterable

from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from . import invocation

__all__ = ["InvocationFormatter"]


def _per_invocation() -> bool:
    return invocation._per_task and invocation.get() is not None  # noqa: SLF001


class InvocationFormatter(LambdaPowertoolsFormatter):  # type: ignore[misc]
    """`LambdaPowertoolsFormatter` whose `append_keys` / `remove_keys` act on the current
    invocation's keys (Powertools' `thread_safe_*` storage) while invocations run concurrently.

    Takes the same arguments as `LambdaPowertoolsFormatter`.
    """

    def append_keys(self, **additional_keys: Any) -> None:
        if _per_invocation():
            self.thread_safe_append_keys(**additional_keys)
        else:
            super().append_keys(**additional_keys)

    def remove_keys(self, keys: Iterable[str]) -> None:
        if _per_invocation():
            self.thread_safe_remove_keys(list(keys))
        else:
            super().remove_keys(keys)

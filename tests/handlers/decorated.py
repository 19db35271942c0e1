"""Handlers behind decorators, callable instances and partials, for tests/test_kinds.py.

Each answers `<name>:<request id>` (buffered as JSON, or streamed as chunks) so the test sees it
ran as its kind: awaited, streamed, written.
"""

import asyncio
import functools

from aws_lambda_powertools import Logger

import aruntime

logger = Logger(service="kinds")


def plain_wraps(func):
    """A decorator as most tracing/metrics decorators are: a sync wrapper, functools.wraps."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


# -- Powertools' Logger.inject_lambda_context (a sync wrapper) -----------------------------------

@logger.inject_lambda_context
@aruntime.streaming(content_type="text/plain")
async def pt_writer(event, context, stream):
    logger.info("inside pt_writer")  # carries what the decorator injected
    await stream.write("pt_writer:")
    await asyncio.sleep(0)
    await stream.write(context.aws_request_id)


@aruntime.streaming(content_type="text/plain")
@logger.inject_lambda_context
async def pt_writer_outer(event, context, stream):
    await stream.write("pt_writer_outer:")
    await stream.write(context.aws_request_id)


@logger.inject_lambda_context
async def pt_async(event, context):
    await asyncio.sleep(0)
    return f"pt_async:{context.aws_request_id}"


@logger.inject_lambda_context
@aruntime.streaming(content_type="text/event-stream")
async def pt_async_gen(event, context):
    yield "pt_async_gen:"
    await asyncio.sleep(0)
    yield context.aws_request_id


@logger.inject_lambda_context
@aruntime.streaming(content_type="text/event-stream")
def pt_sync_gen(event, context):
    yield "pt_sync_gen:"
    yield context.aws_request_id


@logger.inject_lambda_context
def pt_sync(event, context):
    return f"pt_sync:{context.aws_request_id}"


# -- a plain functools.wraps decorator -----------------------------------------------------------

@plain_wraps
@aruntime.streaming(content_type="text/plain")
async def fw_writer(event, context, stream):
    await stream.write("fw_writer:")
    await stream.write(context.aws_request_id)


@plain_wraps
async def fw_async(event, context):
    await asyncio.sleep(0)
    return f"fw_async:{context.aws_request_id}"


@plain_wraps
@aruntime.streaming(content_type="text/event-stream")
async def fw_async_gen(event, context):
    yield "fw_async_gen:"
    yield context.aws_request_id


@plain_wraps
@aruntime.streaming(content_type="text/event-stream")
def fw_sync_gen(event, context):
    yield "fw_sync_gen:"
    yield context.aws_request_id


# -- callable instances and partials -------------------------------------------------------------

class AsyncCallable:
    async def __call__(self, event, context):
        await asyncio.sleep(0)
        return f"inst_async:{context.aws_request_id}"


class AsyncGenCallable:
    @aruntime.streaming(content_type="text/event-stream")
    async def __call__(self, event, context):
        yield "inst_async_gen:"
        yield context.aws_request_id


class WriterCallable:
    @aruntime.streaming(content_type="text/plain")
    async def __call__(self, event, context, stream):
        await stream.write("inst_writer:")
        await stream.write(context.aws_request_id)


class SyncGenCallable:
    def __call__(self, event, context):
        yield "inst_sync_gen:"
        yield context.aws_request_id


inst_async = AsyncCallable()
inst_async_gen = AsyncGenCallable()
inst_writer = WriterCallable()
inst_sync_gen = SyncGenCallable()


async def _tagged_async(tag, event, context):
    await asyncio.sleep(0)
    return f"{tag}:{context.aws_request_id}"


@aruntime.streaming(content_type="text/plain")
async def _tagged_writer(tag, event, context, stream):
    await stream.write(f"{tag}:")
    await stream.write(context.aws_request_id)


partial_async = functools.partial(_tagged_async, "partial_async")
partial_writer = functools.partial(_tagged_writer, "partial_writer")

"""Handlers that fork (tests/test_forked_children.py): `event["child"]` says what the forked
child does; the parent answers with what it saw of the child."""

import asyncio
import multiprocessing
import os
import sys
import time


def _square(x):
    return x * x


def _sleep():
    time.sleep(30)


def _fork_and_wait(child):
    pid = os.fork()
    if pid == 0:
        if child == "exit3":
            sys.exit(3)  # the usual idiom: the child ends the Python way
        if child == "raise":
            raise ValueError("raised in the child")
        return {"child returned": True}  # a child that forgot to exit: it must not answer
    _, status = os.waitpid(pid, 0)
    return {"child": child, "status": os.waitstatus_to_exitcode(status)}


def handler(event, context):
    child = event["child"]
    if child == "terminate":
        # Process.terminate() sends SIGTERM to a forked child, which must end it.
        p = multiprocessing.get_context("fork").Process(target=_sleep)
        p.start()
        p.terminate()
        p.join(10)
        return {"child": child, "status": p.exitcode}
    if child == "pool":
        # A fork-started pool's workers get SIGTERM when it closes: not the parent's signal.
        with multiprocessing.get_context("fork").Pool(2) as pool:
            return {"child": child, "status": sum(pool.map(_square, range(4)))}
    return _fork_and_wait(child)


async def async_handler(event, context):
    await asyncio.sleep(0)
    return _fork_and_wait(event["child"])

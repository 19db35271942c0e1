"""Handlers that register SnapStart and shutdown hooks, for tests/test_lifecycle.py."""

import asyncio
import os

from snapshot_restore_py import register_after_restore, register_before_snapshot

import aruntime

FAIL = os.environ.get("HOOK_FAIL", "")


@register_before_snapshot
def first_registered():
    print("before-snapshot first-registered", flush=True)
    if FAIL == "before":
        raise RuntimeError("cannot snapshot")


@register_before_snapshot
def second_registered():
    print("before-snapshot second-registered", flush=True)


@register_after_restore
def restored():
    print("after-restore", flush=True)
    if FAIL == "after":
        raise ValueError("cannot restore")


@aruntime.on_shutdown
def sync_hook():
    print("shutdown sync hook", flush=True)


@aruntime.on_shutdown
async def async_hook():
    await asyncio.sleep(0.01)
    print("shutdown async hook", flush=True)


def handler(event, context):
    return {"ok": True}

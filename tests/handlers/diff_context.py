"""Echoes the context object back (differential test)."""

from __future__ import annotations

import os
from typing import Any


def _client(cc: Any) -> Any:
    if cc is None:
        return None
    client = cc.client
    return {
        "custom": cc.custom,
        "env": cc.env,
        "client": None
        if client is None
        else {
            name: getattr(client, name, None)
            for name in ("installation_id", "app_title", "app_version_name", "app_version_code", "app_package_name")
        },
    }


def handler(event: Any, context: Any) -> Any:
    remaining = context.get_remaining_time_in_millis()
    identity = context.identity
    return {
        "aws_request_id": context.aws_request_id,
        "invoked_function_arn": context.invoked_function_arn,
        # The exact value depends on timing; its range is what both runtimes must agree on.
        "remaining_ok": 0 < remaining <= 60_000,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "client_context": _client(context.client_context),
        "identity": None
        if identity is None
        else {
            "cognito_identity_id": getattr(identity, "cognito_identity_id", None),
            "cognito_identity_pool_id": getattr(identity, "cognito_identity_pool_id", None),
        },
        "tenant_id": context.tenant_id,
        "w3c": context.w3c(),
        "trace_env": os.environ.get("_X_AMZN_TRACE_ID"),
    }

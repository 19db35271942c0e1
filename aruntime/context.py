"""The `context` argument: the reference client's `LambdaContext`, attribute for attribute."""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

import orjson

from .errors import CONTEXT_UNMARSHAL_ERROR, RuntimeFault
from .protocol import Invocation

W3C_ALLOWED_FIELDS = ("traceparent", "tracestate", "baggage")
# With no usable deadline header the invocation may run for Lambda's longest timeout.
NO_DEADLINE_REMAINING_MS = 900_000


class _Environment:
    """Function settings Lambda passes in the environment; they do not change while we run."""

    def __init__(self) -> None:
        env = os.environ
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME")
        self.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION")


_env: _Environment | None = None


class CognitoIdentity:
    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")
    cognito_identity_id: str | None
    cognito_identity_pool_id: str | None

    def __init__(self) -> None:
        self.cognito_identity_id: str | None = None
        self.cognito_identity_pool_id: str | None = None

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(["
            f"cognito_identity_id={self.cognito_identity_id},"
            f"cognito_identity_pool_id={self.cognito_identity_pool_id}"
            "])"
        )


class Client:
    __slots__ = ("installation_id", "app_title", "app_version_name", "app_version_code",
                 "app_package_name")
    installation_id: Any
    app_title: Any
    app_version_name: Any
    app_version_code: Any
    app_package_name: Any

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(["
            f"installation_id={self.installation_id},"
            f"app_title={self.app_title},"
            f"app_version_name={self.app_version_name},"
            f"app_version_code={self.app_version_code},"
            f"app_package_name={self.app_package_name}"
            "])"
        )


class ClientContext:
    __slots__ = ("custom", "env", "client")
    custom: Any
    env: Any
    client: Any

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(["
            f"custom={self.custom},"
            f"env={self.env},"
            f"client={self.client}"
            "])"
        )


def _from_dict(cls: Any, values: Any) -> Any:
    obj = cls()
    get = values.get if isinstance(values, dict) else (lambda _k: None)
    for field in cls.__slots__:
        setattr(obj, field, get(field))
    return obj


def _parse_json_header(value: str, name: str) -> Any:
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        import json

        try:
            return json.loads(value)
        except Exception as e:  # noqa: BLE001 - the header is the caller's input
            raise RuntimeFault(CONTEXT_UNMARSHAL_ERROR,
                               f"Unable to parse {name} JSON: {e}") from None


class LambdaContext:
    """What a handler learns about its invocation and function."""

    def __init__(self, inv: Invocation) -> None:
        global _env
        env = _env or _Environment()
        _env = env
        self.aws_request_id: str = inv.request_id
        self.log_group_name = env.log_group_name
        self.log_stream_name = env.log_stream_name
        self.function_name = env.function_name
        self.memory_limit_in_mb = env.memory_limit_in_mb
        self.function_version = env.function_version
        self.invoked_function_arn = inv.function_arn
        self.tenant_id = inv.tenant_id
        self._epoch_deadline_time_in_ms = inv.deadline_ms

        client_context = None
        if inv.client_context:
            client_context = _parse_json_header(inv.client_context, "Client Context")
        self._w3c_fields = _extract_w3c(client_context)
        if client_context is None:
            self.client_context: ClientContext | None = None
        else:
            self.client_context = _from_dict(ClientContext, client_context)
            if self.client_context.client is not None:
                self.client_context.client = _from_dict(Client, self.client_context.client)

        self.identity = CognitoIdentity()
        if inv.cognito_identity:
            identity = _parse_json_header(inv.cognito_identity, "Cognito Identity")
            if isinstance(identity, dict):
                self.identity.cognito_identity_id = identity.get("cognitoIdentityId")
                self.identity.cognito_identity_pool_id = identity.get("cognitoIdentityPoolId")

    def get_remaining_time_in_millis(self) -> int:
        if self._epoch_deadline_time_in_ms is None:
            return NO_DEADLINE_REMAINING_MS
        delta = self._epoch_deadline_time_in_ms - int(time.time() * 1000)
        return delta if delta > 0 else 0

    def w3c(self) -> dict[str, str]:
        """The W3C trace context (`traceparent`, `tracestate`, `baggage`) given at invoke."""
        return dict(self._w3c_fields)

    def log(self, msg: Any) -> None:
        for handler in logging.getLogger().handlers:
            sink = getattr(handler, "log_sink", None)
            if sink is not None:
                sink.log(str(msg))
                return
        sys.stdout.write(str(msg))

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(["
            f"aws_request_id={self.aws_request_id},"
            f"log_group_name={self.log_group_name},"
            f"log_stream_name={self.log_stream_name},"
            f"function_name={self.function_name},"
            f"memory_limit_in_mb={self.memory_limit_in_mb},"
            f"function_version={self.function_version},"
            f"invoked_function_arn={self.invoked_function_arn},"
            f"client_context={self.client_context},"
            f"identity={self.identity},"
            f"tenant_id={self.tenant_id}"
            "])"
        )


def _extract_w3c(client_context: Any) -> dict[str, str]:
    # The w3c key is removed so it cannot be read through context.client_context.
    if not isinstance(client_context, dict) or "w3c" not in client_context:
        return {}
    raw = client_context.pop("w3c")
    if not isinstance(raw, dict):
        return {}
    return {k: raw[k] for k in W3C_ALLOWED_FIELDS if isinstance(raw.get(k), str)}

"""The service's payload limits, in bytes (docs/SPEC.md §8; Lambda quotas).

Requests over a limit get the service's JSON 413; responses over one fail the invocation with
`Function.ResponseSizeTooLarge`.
"""

from __future__ import annotations

MAX_REQUEST = 6 * 1024 * 1024  # synchronous Invoke (RequestResponse) request payload
MAX_EVENT_REQUEST = 1024 * 1024  # asynchronous Invoke (Event) request payload
MAX_BUFFERED = 6 * 1024 * 1024 + 100  # buffered response (what the Runtime API accepts)
MAX_STREAMED = 200 * 1024 * 1024  # streamed response

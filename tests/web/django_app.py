"""A Django project in one module, served as an ASGI app by aruntime.asgi in the web tests."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

import django
from django.conf import settings

settings.configure(DEBUG=False, SECRET_KEY="test-only", ROOT_URLCONF=__name__,
                   ALLOWED_HOSTS=["*"], MIDDLEWARE=[], INSTALLED_APPS=[], USE_TZ=True)
django.setup()

from django.core.asgi import get_asgi_application  # noqa: E402
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse  # noqa: E402
from django.urls import path  # noqa: E402

import aruntime  # noqa: E402


def hello(request: HttpRequest) -> JsonResponse:  # a sync view: Django runs it in a thread
    return JsonResponse({"path": request.path, "path_info": request.path_info,
                         "q": request.GET.getlist("q"), "cookies": request.COOKIES,
                         "method": request.method})


async def stream(request: HttpRequest) -> StreamingHttpResponse:
    n = int(request.GET.get("n", "3"))
    delay = float(request.GET.get("delay", "0.2"))

    async def chunks() -> AsyncIterator[str]:
        for i in range(n):
            await asyncio.sleep(delay)
            yield f"django {i}\n"

    return StreamingHttpResponse(chunks(), content_type="text/plain")


async def cookies(request: HttpRequest) -> HttpResponse:
    response = HttpResponse("ok", content_type="text/plain")
    response.set_cookie("a", "1")
    response.set_cookie("b", "2")
    return response


urlpatterns = [path("hello", hello), path("stream", stream), path("cookies", cookies)]
app = get_asgi_application()
handler = aruntime.asgi(app)

"""
The async hook's transport, for triggers: one ``httpx.AsyncClient`` per hook with the shared TLS
context, the connection read without blocking the event loop, every attempt within the request
budget of its key and the request deadline, and the same retries and paging as the sync hook.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx
from tenacity import AsyncRetrying

from airflow_provider_phenv.errors import (
    PostHogTransportError,
)
from airflow_provider_phenv.hooks._base import PostHogHookBase, first_line, shared_ssl_context
from airflow_provider_phenv.hooks._budget import request_budget
from airflow_provider_phenv.hooks._calls import ApiCall, ListPager
from airflow_provider_phenv.hooks._settings import PostHogSettings
from airflow_provider_phenv.hooks._transport import (
    CHUNK_BYTES,
    BodyDecoder,
    ResponseProblem,
)

if TYPE_CHECKING:
    from typing_extensions import Self

    # requests costs ~30 ms to import; DAG files that only build operators never need it.
    pass


class AsyncClient(PostHogHookBase):
    """What :class:`~airflow_provider_phenv.hooks.posthog.PostHogAsyncHook` sends its calls with."""

    _settings: PostHogSettings | None = None
    _client: httpx.AsyncClient | None = None

    def __init__(
        self,
        posthog_conn_id: str = PostHogHookBase.default_conn_name,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        backoff: float = 1.0,
        backoff_max: float = 30.0,
        keepalive: float = 120.0,
        max_body_bytes: int | None = None,
        request_deadline: float | None = None,
        max_pages: int | None = None,
    ) -> None:
        """
        :param posthog_conn_id: Airflow connection id of type ``posthog``.
        :param timeout: as for :class:`PostHogHook`; so are ``max_retries``, ``backoff``,
            ``backoff_max``, ``max_body_bytes``, ``request_deadline`` and ``max_pages``.
        :param keepalive: seconds an idle connection is kept open. Keep it longer than the poll
            interval, or every poll pays a new TCP (and TLS) handshake.
        """
        super().__init__(
            posthog_conn_id,
            timeout=timeout,
            max_retries=max_retries,
            backoff=backoff,
            backoff_max=backoff_max,
            max_body_bytes=max_body_bytes,
            request_deadline=request_deadline,
            max_pages=max_pages,
        )
        self._keepalive = keepalive

    async def get_settings(self) -> PostHogSettings:
        """Read the connection once, without blocking the event loop."""
        if self._settings is None:
            from airflow.providers.common.compat.connection import (
                get_async_connection,
                get_async_extra_dejson,
            )

            conn = await get_async_connection(self.posthog_conn_id, hook=type(self))
            self._settings = self._settings_from(conn, await get_async_extra_dejson(conn))
        return self._settings

    async def _get_client(self) -> httpx.AsyncClient:
        if self._client is None:
            settings = await self.get_settings()
            self._client = httpx.AsyncClient(
                headers=self._headers(settings),
                timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
                verify=shared_ssl_context(),
                limits=httpx.Limits(keepalive_expiry=self._keepalive),
                # Redirects are followed by the hook itself (same origin only).
                follow_redirects=False,
                # No HTTP_PROXY/ALL_PROXY for plain http: the proxy would read the key in clear text.
                trust_env=settings.use_env_proxies,
            )
        return self._client

    async def aclose(self) -> None:
        """Close the HTTP client and its connections."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _call(self, call: ApiCall) -> Any:
        settings = await self.get_settings()
        call, url = self._prepare(settings, call)
        budget = request_budget(
            settings.base_url, settings.api_key, settings.requests_per_minute, settings.requests_per_hour
        )
        # Identical reads in flight at the same moment are sent once; writes never are.
        same = (url, json.dumps(call.params, sort_keys=True, default=str)) if call.method == "GET" else None
        async for attempt in AsyncRetrying(**self._retry_kwargs(settings)):
            with attempt:
                return await budget.send(same, lambda: self._send_once(settings, call, url))
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    async def _send_once(self, settings: PostHogSettings, call: ApiCall, url: str) -> Any:
        """One attempt, cancelled when the request deadline passes (body and redirects included)."""
        try:
            return await asyncio.wait_for(self._exchange(settings, call, url), settings.request_deadline)
        except asyncio.TimeoutError:
            raise self._deadline_error(settings, call, self._path(settings, url)) from None

    async def _exchange(self, settings: PostHogSettings, call: ApiCall, url: str) -> Any:
        client = await self._get_client()
        params, hops = call.params, 0
        while True:
            path = self._path(settings, url)
            try:
                async with client.stream(call.method, url, params=params, json=call.body) as response:
                    status, headers = response.status_code, response.headers
                    if 300 <= status < 400:
                        # The Location carries its own query string.
                        url, params, hops = (
                            self._redirect_target(settings, call, path, url, status, headers, hops),
                            None,
                            hops + 1,
                        )
                        continue
                    try:
                        decoder = BodyDecoder(
                            headers.get("content-encoding"),
                            settings.max_body_bytes,
                            headers.get("content-length"),
                        )
                        async for chunk in response.aiter_raw(CHUNK_BYTES):
                            decoder.feed(chunk)
                        body = decoder.finish()
                    except ResponseProblem as problem:
                        raise self._problem(settings, call, path, status, problem) from None
            except httpx.TransportError as error:
                sent = not isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout))
                cause = settings.scrub(f"{type(error).__name__}: {first_line(error)}")
                if sent and not call.repeatable:
                    raise self._outcome_unknown(call, path, None, cause) from None
                raise PostHogTransportError(
                    request_sent=sent, method=call.method, path=path, resource=call.subject, detail=cause
                ) from None
            return self._result(settings, call, path, status, headers, body)

    async def _paginate(self, call: ApiCall) -> AsyncIterator[dict[str, Any]]:
        """Async :meth:`PostHogHook._paginate`."""
        settings = await self.get_settings()
        call = self._prepare(settings, call)[0]
        pager = ListPager(
            call, settings.max_pages, lambda page: settings.scrub(self._prepare(settings, page)[1])
        )
        while pager.call is not None:
            for result in pager.take(await self._call(pager.call)):
                yield result

"""
The synchronous hook's transport: one keep-alive ``requests`` session per hook, every attempt
under the request deadline and the body limit, retries with tenacity, redirects followed only to
the same origin, and paging with a guard against links that never end.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any

from tenacity import Retrying

from airflow_provider_phenv.errors import (
    PostHogAPIError,
    PostHogTransportError,
)
from airflow_provider_phenv.hooks._base import PostHogHookBase, first_line
from airflow_provider_phenv.hooks._calls import ApiCall, ListPager
from airflow_provider_phenv.hooks._settings import PostHogSettings
from airflow_provider_phenv.hooks._transport import (
    CHUNK_BYTES,
    BodyDecoder,
    Deadline,
    ResponseProblem,
    watched_adapter,
)

if TYPE_CHECKING:
    # requests costs ~30 ms to import; DAG files that only build operators never need it.
    import requests
    from typing_extensions import Self


class SyncClient(PostHogHookBase):
    """What :class:`~airflow_provider_phenv.hooks.posthog.PostHogHook` sends its calls with."""

    @cached_property
    def settings(self) -> PostHogSettings:
        """The connection, read once per hook."""
        conn = self.get_connection(self.posthog_conn_id)
        return self._settings_from(conn, conn.extra_dejson)

    @cached_property
    def session(self) -> requests.Session:
        """One session per hook, so all requests of a task reuse one TCP connection."""
        import requests

        session = requests.Session()
        # Redirects are followed by the hook itself (same origin only); reads obey the deadline.
        adapter = watched_adapter()
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        # No HTTP_PROXY/ALL_PROXY for plain http: the proxy would read the key in clear text.
        session.trust_env = self.settings.use_env_proxies
        session.headers.update(self._headers(self.settings))
        return session

    def get_conn(self) -> requests.Session:
        """Return the hook's HTTP session."""
        return self.session

    def close(self) -> None:
        """Close the HTTP session and its connections."""
        if "session" in self.__dict__:
            self.session.close()
            del self.__dict__["session"]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- transport -------------------------------------------------------------------------------

    def _call(self, call: ApiCall) -> Any:
        settings = self.settings
        call, url = self._prepare(settings, call)
        for attempt in Retrying(**self._retry_kwargs(settings)):
            with attempt:
                return self._send_once(settings, call, url)
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    def _send_once(self, settings: PostHogSettings, call: ApiCall, url: str) -> Any:
        """One attempt: the request, any same-origin redirects, and the body, within the deadline."""
        import requests
        from urllib3.exceptions import HTTPError as Urllib3Error

        path = self._path(settings, url)
        self.log.debug("PostHog request %s %s", call.method, path)
        with Deadline(settings.request_deadline) as deadline:
            try:
                return self._exchange(settings, call, url, deadline)
            except (requests.RequestException, Urllib3Error, OSError) as error:
                deadline.check()
                if deadline.fired:
                    raise self._deadline_error(settings, call, path) from None
                raise self._transport_error(settings, call, path, error) from None

    def _exchange(self, settings: PostHogSettings, call: ApiCall, url: str, deadline: Deadline) -> Any:
        params, hops = call.params, 0
        while True:
            path = self._path(settings, url)
            response = self.session.request(
                call.method,
                url,
                params=params,
                json=call.body,
                timeout=(settings.connect_timeout, settings.timeout),
                allow_redirects=False,
                stream=True,
            )
            try:
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
                    for chunk in response.raw.stream(CHUNK_BYTES, decode_content=False):
                        decoder.feed(chunk)
                        deadline.check()
                    body = decoder.finish()
                except ResponseProblem as problem:
                    raise self._problem(settings, call, path, status, problem) from None
                if deadline.fired:
                    raise self._deadline_error(settings, call, path)
            finally:
                response.close()
            return self._result(settings, call, path, status, headers, body)

    def _transport_error(
        self, settings: PostHogSettings, call: ApiCall, path: str, error: BaseException
    ) -> PostHogAPIError:
        import requests
        from urllib3.exceptions import NewConnectionError

        if isinstance(
            error, (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL, ValueError)
        ) and not isinstance(error, requests.exceptions.ChunkedEncodingError):
            # Refused by the client before sending. Its text may quote a header (the key): not kept.
            return PostHogAPIError(
                status_code=None,
                method=call.method,
                path=path,
                resource=call.subject,
                detail=f"the request could not be built ({type(error).__name__}); nothing was sent",
            )
        # Only a connection that was never opened proves the request did not reach PostHog: a
        # connect timeout, or urllib3's NewConnectionError (refused, DNS) wrapped in ConnectionError.
        reason = error.args[0] if error.args else None
        refused = isinstance(error, requests.ConnectionError) and isinstance(
            getattr(reason, "reason", reason), NewConnectionError
        )
        sent = not isinstance(error, requests.ConnectTimeout) and not refused
        cause = settings.scrub(f"{type(error).__name__}: {first_line(error)}")
        if sent and not call.repeatable:
            return self._outcome_unknown(call, path, None, cause)
        return PostHogTransportError(
            request_sent=sent, method=call.method, path=path, resource=call.subject, detail=cause
        )

    def _paginate(self, call: ApiCall) -> Iterator[dict[str, Any]]:
        """
        Yield every result of a paginated list (limit/offset or cursor), following ``next`` links;
        a link back to a page already read, or more than ``max_pages`` pages, is an error.
        """
        settings = self.settings
        call = self._prepare(settings, call)[0]
        pager = ListPager(
            call, settings.max_pages, lambda page: settings.scrub(self._prepare(settings, page)[1])
        )
        while pager.call is not None:
            yield from pager.take(self._call(pager.call))

"""What every PostHog operator shares: the connection, the project, the hook and input checks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any, TypeVar

from airflow.sdk import BaseOperator

from airflow_provider_phenv.hooks.posthog import PostHogHook
from airflow_provider_phenv.validation import check_project_id, is_template

T = TypeVar("T")


def check_unless_template(check: Callable[..., T], *args: Any) -> None:
    """
    Run ``check`` now unless its value (the last argument) is a Jinja template or ``None``.

    Literal mistakes then fail when the DAG is parsed; templated values are checked in
    ``execute`` after rendering, still before any request.
    """
    value = args[-1]
    if value is not None and not is_template(value):
        check(*args)


class PostHogBaseOperator(BaseOperator):
    """
    Base of the PostHog operators.

    :param posthog_conn_id: Airflow connection id of type ``posthog``. (templated)
    :param project_id: PostHog project (environment) id; default: the connection's extra
        ``project_id``. (templated)
    :param hook_params: extra keyword arguments for :class:`PostHogHook`, e.g. ``timeout`` or
        ``max_retries``.
    """

    template_fields: Sequence[str] = ("posthog_conn_id", "project_id")

    def __init__(
        self,
        *,
        posthog_conn_id: str = PostHogHook.default_conn_name,
        project_id: int | str | None = None,
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.posthog_conn_id = posthog_conn_id
        self.project_id = project_id
        self.hook_params = hook_params or {}
        if project_id not in (None, ""):
            check_unless_template(check_project_id, project_id)

    @cached_property
    def hook(self) -> PostHogHook:
        """The hook, created on first use so that ``__init__`` (DAG parsing) does no I/O."""
        return PostHogHook(self.posthog_conn_id, **self.hook_params)

    def rendered_project_id(self) -> str | None:
        """The project id after rendering, checked; ``None`` means the connection's default."""
        if self.project_id in (None, ""):
            return None
        return check_project_id(self.project_id)

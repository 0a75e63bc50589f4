"""The base of every PostHog operator: the connection, the project, the hook and the input checks."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator

from airflow_provider_phenv.hooks.posthog import PostHogHook
from airflow_provider_phenv.validation import CheckedFields


class PostHogBaseOperator(CheckedFields, BaseOperator):
    """
    Base of the PostHog operators.

    Subclasses declare their inputs' checks in ``field_checks`` (see
    :mod:`airflow_provider_phenv.validation`): literal values are checked when the DAG is parsed,
    rendered ones by :meth:`checked_fields` at the start of ``execute``.

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

    @cached_property
    def hook(self) -> PostHogHook:
        """The hook, created on first use so that ``__init__`` (DAG parsing) does no I/O."""
        return PostHogHook(self.posthog_conn_id, **self.hook_params)

"""Operators that pause, unpause and test PostHog batch exports."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_phenv.errors import PostHogError
from airflow_provider_phenv.field_checks import extend, optional
from airflow_provider_phenv.links import PostHogBatchExportLink
from airflow_provider_phenv.operators.base import PostHogBaseOperator
from airflow_provider_phenv.payloads import check_batch_export_payload, payload_from_export
from airflow_provider_phenv.validation import check_bool, check_uuid, format_timestamp

if TYPE_CHECKING:
    from airflow.sdk import Context


class PostHogDestinationTestError(PostHogError):
    """A batch export destination test step reported ``Failed``."""


def check_steps(name: str, steps: Any) -> list[int | str]:
    """Step indexes or names to run: a non-empty list."""
    if isinstance(steps, (str, bytes)) or not isinstance(steps, Sequence) or not steps:
        raise ValueError(f"Invalid {name} {steps!r}: expected a non-empty list of step indexes or names.")
    for step in steps:
        if isinstance(step, bool) or not isinstance(step, (int, str)) or (isinstance(step, int) and step < 0):
            raise ValueError(f"Invalid step {step!r}: expected a step index (0, 1, ...) or a step name.")
    return list(steps)


class _BatchExportOperator(PostHogBaseOperator):
    """An operator about one existing batch export, with a link to it."""

    template_fields: Sequence[str] = (*PostHogBaseOperator.template_fields, "batch_export_id")
    field_checks = extend(PostHogBaseOperator.field_checks, batch_export_id=check_uuid)
    operator_extra_links = (PostHogBatchExportLink(),)

    def __init__(self, *, batch_export_id: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batch_export_id = batch_export_id
        self.batch_export_url: str | None = None

    def _link_export(self, values: dict[str, Any]) -> str:
        """Remember the link to the export (before any request, so a failed task has it too)."""
        export_id = values["batch_export_id"]
        self.batch_export_url = self.hook.ui_url(values["project_id"], f"batch_exports/{export_id}")
        return export_id


class PostHogPauseBatchExportOperator(_BatchExportOperator):
    """
    Pause a PostHog batch export, e.g. before maintenance of its destination.

    Pausing a paused export is a no-op, so the task is safe to retry.

    :param batch_export_id: UUID of the batch export. (templated)
    :param posthog_conn_id: Airflow connection id of type ``posthog``. (templated)
    :param project_id: PostHog project id; default: the connection's. (templated)
    :return: ``{"batch_export_id": ..., "paused": true}``
    """

    def __init__(self, *, batch_export_id: str, **kwargs: Any) -> None:
        super().__init__(batch_export_id=batch_export_id, **kwargs)
        self.check_literal_fields()

    def execute(self, context: Context) -> dict[str, Any]:
        values = self.checked_fields()
        export_id = self._link_export(values)
        self.log.info("Pausing PostHog batch export %s.", export_id)
        result = self.hook.pause_batch_export(export_id, project_id=values["project_id"])
        return {"batch_export_id": export_id, "paused": bool(result.get("paused", True))}


class PostHogUnpauseBatchExportOperator(_BatchExportOperator):
    """
    Unpause a PostHog batch export, optionally backfilling the time it was paused.

    Unpausing an active export is a no-op (and starts no backfill), so the task is safe to retry.

    :param batch_export_id: UUID of the batch export. (templated)
    :param backfill: also export the data from the pause until now. (templated)
    :param posthog_conn_id: Airflow connection id of type ``posthog``. (templated)
    :param project_id: PostHog project id; default: the connection's. (templated)
    :return: ``{"batch_export_id": ..., "paused": false}``; the moment of the request is also pushed
        to XCom as ``unpaused_at``, for a downstream logs sensor's ``since``.
    """

    template_fields: Sequence[str] = (*_BatchExportOperator.template_fields, "backfill")
    field_checks = extend(_BatchExportOperator.field_checks, backfill=check_bool)

    def __init__(self, *, batch_export_id: str, backfill: bool | str = False, **kwargs: Any) -> None:
        super().__init__(batch_export_id=batch_export_id, **kwargs)
        self.backfill = backfill
        self.check_literal_fields()

    def execute(self, context: Context) -> dict[str, Any]:
        values = self.checked_fields()
        export_id = self._link_export(values)
        backfill = values["backfill"]
        self.log.info("Unpausing PostHog batch export %s (backfill=%s).", export_id, backfill)
        unpaused_at = format_timestamp(datetime.now(timezone.utc))
        result = self.hook.unpause_batch_export(export_id, backfill=backfill, project_id=values["project_id"])
        if context.get("ti") is not None:
            # Runs started by this unpause log after this moment: a sensor waiting for them uses it
            # as its ``since``, so a quick run is not missed when the sensor starts late.
            context["ti"].xcom_push(key="unpaused_at", value=unpaused_at)
        return {"batch_export_id": export_id, "paused": bool(result.get("paused", False))}


class PostHogTestBatchExportOperator(_BatchExportOperator):
    """
    Run PostHog's destination test steps for a batch export, failing on the first failed step.

    Test an existing export (``batch_export_id``: its stored destination, secrets included, is
    used) or a payload before creating it (``batch_export``: name, interval, destination). The
    steps run in order; skipped steps do not fail the task.

    :param batch_export_id: UUID of an existing batch export. (templated)
    :param batch_export: create payload of an export that does not exist yet. (templated)
    :param steps: indexes or names of the steps to run; default all of them. (templated)
    :param posthog_conn_id: Airflow connection id of type ``posthog``. (templated)
    :param project_id: PostHog project id; default: the connection's. (templated)
    :return: one ``{"step", "name", "status", "message"}`` per step run.
    """

    template_fields: Sequence[str] = (*_BatchExportOperator.template_fields, "batch_export", "steps")
    template_fields_renderers: ClassVar[dict[str, str]] = {"batch_export": "json"}
    field_checks = extend(
        PostHogBaseOperator.field_checks,
        batch_export_id=optional(check_uuid),
        batch_export=optional(lambda _name, payload: check_batch_export_payload(payload)),
        steps=optional(check_steps),
    )

    def __init__(
        self,
        *,
        batch_export_id: str | None = None,
        batch_export: dict[str, Any] | None = None,
        steps: Sequence[int | str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(batch_export_id=batch_export_id, **kwargs)
        self.batch_export = batch_export
        self.steps = steps
        if (batch_export_id is None) == (batch_export is None):
            raise ValueError(
                "Give exactly one of batch_export_id (an existing export) or batch_export (a payload)."
            )
        self.check_literal_fields()

    def execute(self, context: Context) -> list[dict[str, Any]]:
        values = self.checked_fields()
        project_id = values["project_id"]
        if values["batch_export_id"] is not None:
            export_id = self._link_export(values)
            payload = payload_from_export(self.hook.get_batch_export(export_id, project_id=project_id))
            what = f"batch export {export_id}"
        else:
            export_id = None
            payload = values["batch_export"]
            what = f"new batch export {payload['name']!r}"
        destination_type = payload["destination"].get("type")
        available = self.hook.get_batch_export_test_steps(destination_type, project_id=project_id)["steps"]
        selected = _select_steps(available, values["steps"])
        self.log.info("Testing the %s destination of %s: %d step(s).", destination_type, what, len(selected))
        results = []
        for index in selected:
            if export_id is not None:
                step = self.hook.run_batch_export_test_step(export_id, index, payload, project_id=project_id)
            else:
                step = self.hook.run_batch_export_test_step_new(payload, index, project_id=project_id)
            result = step.get("result") or {}
            outcome = {
                "step": index,
                "name": step.get("name") or available[index].get("name"),
                "status": result.get("status"),
                "message": result.get("message"),
            }
            self.log.info(
                "Step %d %r of %s: %s %s",
                index,
                outcome["name"],
                what,
                outcome["status"],
                outcome["message"] or "",
            )
            results.append(outcome)
            if outcome["status"] == "Failed":
                raise PostHogDestinationTestError(
                    f"Destination test of {what} failed at step {index} {outcome['name']!r}: "
                    f"{outcome['message']}"
                )
        return results


def _select_steps(available: list[dict[str, Any]], wanted: list[int | str] | None) -> list[int]:
    """Indexes of the steps to run, in PostHog's order; unknown indexes or names are an error."""
    if wanted is None:
        return list(range(len(available)))
    names = [step.get("name") for step in available]
    selected = set()
    for step in wanted:
        if isinstance(step, int) and step < len(available):
            selected.add(step)
        elif isinstance(step, str) and step in names:
            selected.add(names.index(step))
        else:
            raise ValueError(f"Invalid step {step!r}: this destination has the steps {names}.")
    return sorted(selected)

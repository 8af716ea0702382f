"""Schemathesis hooks for the API contract check run by `scripts/test`.

The OpenAPI document states every constraint JSON Schema can express; this
file holds the ones it cannot, so that generated requests the server must
refuse for reasons outside the schema are not counted as schema-valid:

- `POST /api/keys/create`: `expires_at` must lie in the future (relative to
  the time of the request, which no schema can state).
- `POST /api/memories/create` and `/api/memories/{id}/update`: `content` is
  at most `[memory] max_chars` characters, a setting of the server (2000 by
  default, as in this check); the schema states only the ceiling the
  setting may reach.
- `POST /api/tasks/create` and `/api/tasks/{id}/update`: a cron
  expression must parse, its time zone must exist and an interval must be
  at least `[tasks] min_interval`.
"""

from datetime import datetime, timezone

import schemathesis


def _in_the_past(value: str) -> bool:
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        # Python's datetime starts at year 1; the pattern admits year 0.
        return value[:4] < "0001"
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when <= datetime.now(timezone.utc)


def _keeps_future_expiry(body) -> bool:
    if isinstance(body, dict) and isinstance(body.get("expires_at"), str):
        return not _in_the_past(body["expires_at"])
    return True


@schemathesis.hook("filter_body").apply_to(path="/api/keys/create")
def key_expiry_in_the_future(context, body):
    return _keeps_future_expiry(body)


@schemathesis.hook("filter_case").apply_to(path="/api/keys/create")
def key_expiry_in_the_future_case(context, case):
    return _keeps_future_expiry(case.body)


# The server's `[memory] max_chars` in this check (the default).
MEMORY_MAX_CHARS = 2000


def _fits_memory_limit(body) -> bool:
    if isinstance(body, dict) and isinstance(body.get("content"), str):
        return len(body["content"]) <= MEMORY_MAX_CHARS
    return True


@schemathesis.hook("filter_body").apply_to(path="/api/memories/create")
def memory_within_limit(context, body):
    return _fits_memory_limit(body)


@schemathesis.hook("filter_case").apply_to(path="/api/memories/create")
def memory_within_limit_case(context, case):
    return _fits_memory_limit(case.body)


@schemathesis.hook("filter_body").apply_to(path="/api/memories/{id}/update")
def memory_update_within_limit(context, body):
    return _fits_memory_limit(body)


@schemathesis.hook("filter_case").apply_to(path="/api/memories/{id}/update")
def memory_update_within_limit_case(context, case):
    return _fits_memory_limit(case.body)


# Scheduled tasks: a cron expression must parse and its time zone must be
# an IANA name, and an interval must be at least the server's
# `[tasks] min_interval` (60 s by default, as in this check); no schema
# states a cron grammar or the time-zone database. Generated schedules are
# mapped onto valid ones (keeping the generated kind and interval where
# they are valid), so the rest of each request is still exercised.
TASKS_MIN_INTERVAL = 60


def _valid_schedule(schedule):
    if not isinstance(schedule, dict):
        return schedule
    if schedule.get("kind") == "every":
        seconds = schedule.get("seconds")
        if isinstance(seconds, int) and seconds < TASKS_MIN_INTERVAL:
            schedule = dict(schedule, seconds=TASKS_MIN_INTERVAL)
        return schedule
    if schedule.get("kind") == "cron":
        return dict(schedule, expression="0 7 * * *", timezone="Europe/Berlin")
    return schedule


def _with_valid_schedule(body):
    if isinstance(body, dict) and "schedule" in body:
        return dict(body, schedule=_valid_schedule(body["schedule"]))
    return body


def _positive(case) -> bool:
    # Negative cases must stay invalid: only schema-valid ones are mapped.
    mode = getattr(getattr(case.meta, "generation", None), "mode", None)
    return mode is None or str(getattr(mode, "value", mode)).lower() == "positive"


@schemathesis.hook("map_case").apply_to(path="/api/tasks/create")
def task_schedule_is_valid(context, case):
    if _positive(case):
        case.body = _with_valid_schedule(case.body)
    return case


@schemathesis.hook("map_case").apply_to(path="/api/tasks/{id}/update")
def task_update_schedule_is_valid(context, case):
    if _positive(case):
        case.body = _with_valid_schedule(case.body)
    return case

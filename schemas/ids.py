"""Workflow ids of jobs: one id per job name, so a name is in use while its history exists."""

from __future__ import annotations


def job_id(kind: str, name: str) -> str:
    return f"{kind}-{name}"


def plan_schedule_id(plan: str) -> str:
    return f"plan-{plan}"

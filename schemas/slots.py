"""What jobs and the job-slots workflow exchange (see workflows/slots.py)."""

from __future__ import annotations

from pydantic import BaseModel, Field

# The slots workflow's type name: activities start it by name (they sit below the workflows).
SLOTS_WORKFLOW = "JobSlotsWorkflow"


class SlotRequest(BaseModel):
    holder: str  # workflow id of the job
    limit: int


class SlotsState(BaseModel):
    holders: list[str] = Field(default_factory=list)
    queue: list[str] = Field(default_factory=list)
    limit: int = 1


def slots_id(task_queue: str, kind: str) -> str:
    """One slots workflow per control queue and kind: it runs on the queue of the jobs it limits."""
    return f"slots-{task_queue}-{kind}"

"""Search attributes the product sets on every job, so the Web UI can list jobs by state.

Example Web UI query for stuck jobs: ``BackupPhase = 'WaitingForOperator'``.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

JOB_KIND = SearchAttributeKey.for_keyword("BackupJobKind")
PHASE = SearchAttributeKey.for_keyword("BackupPhase")
STEP = SearchAttributeKey.for_keyword("BackupStep")
VAULT = SearchAttributeKey.for_keyword("BackupVault")
CLUSTER = SearchAttributeKey.for_keyword("BackupCluster")

ALL = (JOB_KIND, PHASE, STEP, VAULT, CLUSTER)


def dev_server_flags() -> list[str]:
    """Flags for a Temporal dev server: ALL registered, and deleted workflows forgotten quickly.

    A delete request frees a job's name by deleting its workflow; the dev server's default 30 s
    queue checkpoints would make ``backupctl delete`` wait that long for the name to come free.
    """
    flags: list[str] = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}=Keyword"]
    for setting in (
        "history.transferProcessorUpdateAckInterval",
        "history.visibilityProcessorUpdateAckInterval",
    ):
        flags += ["--dynamic-config-value", f'{setting}="1s"']
    return flags


def initial(kind: str, *, vault: str = "", cluster: str = "") -> TypedSearchAttributes:
    """The attributes a starter sets; their presence also tells the job to keep them current."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(JOB_KIND, kind),
            SearchAttributePair(PHASE, "InProgress"),
            SearchAttributePair(STEP, ""),
            SearchAttributePair(VAULT, vault),
            SearchAttributePair(CLUSTER, cluster),
        ]
    )

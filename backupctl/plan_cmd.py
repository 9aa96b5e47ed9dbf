"""``backupctl plan create|list|describe|pause|resume|trigger|delete``: backup plans as Temporal Schedules."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer
from rich.table import Table
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from activities import search_attributes as sa
from backupctl import options as opt
from backupctl.asyncrun import with_client
from backupctl.console import console, load_settings
from schemas.common import format_duration, is_cron, parse_duration
from schemas.errors import BackupCenterError
from schemas.ids import plan_schedule_id
from schemas.settings import Settings
from schemas.specs import BackupMode, BackupSpec, ClusterResources, PlanSpec
from schemas.task_queues import control_queue
from workflows.plan import PlanRunWorkflow

plan_app = typer.Typer(help="Backup plans: backups on a cron cycle or an interval.", no_args_is_help=True)


def build_schedule(plan: PlanSpec, settings: Settings) -> Schedule:
    template = BackupSpec.model_validate({**plan.template.model_dump(), "name": plan.name, "plan": plan.name})
    if is_cron(plan.cycle):
        spec = ScheduleSpec(cron_expressions=[plan.cycle])
    else:
        spec = ScheduleSpec(intervals=[ScheduleIntervalSpec(every=parse_duration(plan.cycle))])
    return Schedule(
        action=ScheduleActionStartWorkflow(
            PlanRunWorkflow.run,
            args=[template, plan.drill_every.total_seconds() if plan.drill_every else 0.0],
            id=f"planrun-{plan.name}",  # Temporal appends the scheduled time
            task_queue=control_queue(settings),
            typed_search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(sa.CLUSTER, settings.cluster_id),
                    SearchAttributePair(sa.VAULT, template.vault),
                ]
            ),
        ),
        spec=spec,
        # A run still going when the next is due: skip the new one rather than pile up.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(paused=plan.paused, note=f"backup plan {plan.name}: {plan.cycle}" + (
            f", restore drill every {format_duration(plan.drill_every)}" if plan.drill_every else "")),
    )


@plan_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Plan name; its runs are named <plan>-<UTC timestamp>")],
    cycle: Annotated[
        str, typer.Option(help="5-field cron ('1 4 * * *' = 04:01 daily) or interval ('6h30m')")
    ],
    vault: opt.Vault,
    include_namespaces: opt.IncludeNamespaces = None,
    exclude_namespaces: opt.ExcludeNamespaces = None,
    mode: opt.Mode = BackupMode.application,
    selector: opt.Selector = None,
    include_resources: opt.IncludeResources = None,
    exclude_resources: opt.ExcludeResources = None,
    cluster_resources: opt.ClusterScope = ClusterResources.related,
    volume_data: opt.VolumeData = True,
    ttl: opt.Ttl = "30d",
    paused: Annotated[bool, typer.Option(help="Create the plan paused")] = False,
    drill_every: Annotated[
        str | None,
        typer.Option(help="Restore-drill the newest backup when the plan's last drill is this old ('7d')"),
    ] = None,
) -> None:
    """Create a backup plan."""
    plan = PlanSpec.model_validate(
        {
            "name": name,
            "cycle": cycle,
            "paused": paused,
            "drill_every": drill_every,
            "template": opt.template_fields(
                vault,
                include_namespaces,
                exclude_namespaces,
                mode,
                selector,
                include_resources,
                exclude_resources,
                cluster_resources,
                volume_data,
                ttl,
            ),
        }
    )
    settings = load_settings()

    async def go(client: Client) -> None:
        try:
            await client.create_schedule(plan_schedule_id(name), build_schedule(plan, settings))
        except ScheduleAlreadyRunningError:
            raise BackupCenterError("NameInUse", kind="plan", name=name) from None

    with_client(go)
    console.print(f"plan {name} created: {plan.cycle}{' (paused)' if paused else ''}")


async def _handle_call(client: Client, name: str, what: str) -> object:
    handle = client.get_schedule_handle(plan_schedule_id(name))
    try:
        if what == "describe":
            return await handle.describe()
        if what == "pause":
            await handle.pause(note="paused by backupctl")
        elif what == "resume":
            await handle.unpause(note="resumed by backupctl")
        elif what == "trigger":
            await handle.trigger(overlap=ScheduleOverlapPolicy.SKIP)
        elif what == "delete":
            await handle.delete()
        return None
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise BackupCenterError("NotFound", kind="plan", name=name) from None
        raise


_FULL = {"minute": (0, 59), "hour": (0, 23), "day_of_month": (1, 31), "month": (1, 12), "day_of_week": (0, 6)}


def describe_cycle(spec: ScheduleSpec | None) -> str:
    """The plan's cycle as the operator wrote it (the server keeps crons as calendar specs)."""
    if spec is None:
        return ""
    if spec.intervals:
        return ", ".join(format_duration(i.every) for i in spec.intervals)
    crons = list(spec.cron_expressions)
    for cal in spec.calendars:
        fields = []
        for field, (low, high) in _FULL.items():
            ranges = getattr(cal, field)
            parts = []
            for r in ranges:
                end = r.end if r.end >= r.start else r.start
                if r.start == low and end == high and r.step in (0, 1):
                    parts.append("*")
                else:
                    text = str(r.start) if end == r.start else f"{r.start}-{end}"
                    parts.append(text + (f"/{r.step}" if r.step > 1 else ""))
            fields.append(",".join(parts) or "*")
        crons.append(" ".join(fields))
    return ", ".join(crons)


@plan_app.command("list")
def list_plans() -> None:
    """Every plan with its cycle, state and next run."""

    async def go(client: Client) -> list[tuple[str, ...]]:
        rows: list[tuple[str, ...]] = []
        async for entry in await client.list_schedules():
            if not entry.id.startswith("plan-"):
                continue
            info = entry.info
            cycle = describe_cycle(entry.schedule.spec if entry.schedule else None)
            paused = bool(entry.schedule and entry.schedule.state.paused)
            next_run = (
                info.next_action_times[0].strftime("%Y-%m-%d %H:%M:%S")
                if info and info.next_action_times
                else ""
            )
            rows.append((entry.id.removeprefix("plan-"), cycle, "paused" if paused else "active", next_run))
        return rows

    table = Table("plan", "cycle", "state", "next run (UTC)")
    for row in sorted(with_client(go)):
        table.add_row(*row)
    console.print(table)


@plan_app.command("describe")
def describe(name: Annotated[str, typer.Argument()]) -> None:
    """Cycle, state, next runs and the recent runs of a plan."""
    desc = with_client(lambda client: _handle_call(client, name, "describe"))
    schedule = desc.schedule  # type: ignore[attr-defined]
    info = desc.info  # type: ignore[attr-defined]
    console.print(f"plan {name}: {describe_cycle(schedule.spec)}")
    console.print(f"state: {'paused' if schedule.state.paused else 'active'}")
    if schedule.state.paused:
        # The server still computes the calendar's next times; a paused plan starts none of them.
        console.print(f"next run: none while paused (`backupctl plan resume {name}`)")
    else:
        for when in info.next_action_times[:3]:
            console.print(f"next run: {when:%Y-%m-%d %H:%M:%S} UTC")
    for action in info.recent_actions[-5:]:
        console.print(f"ran: {action.started_at:%Y-%m-%d %H:%M:%S} UTC  workflow {action.action.workflow_id}")
    console.print(f"runs: {info.num_actions} started, {info.num_actions_skipped_overlap} skipped (overlap)")


@plan_app.command("pause")
def pause(name: Annotated[str, typer.Argument()]) -> None:
    """Stop starting new runs."""
    with_client(lambda client: _handle_call(client, name, "pause"))
    console.print(f"plan {name} paused")


@plan_app.command("resume")
def resume(name: Annotated[str, typer.Argument()]) -> None:
    """Start runs again on the plan's cycle."""
    with_client(lambda client: _handle_call(client, name, "resume"))
    console.print(f"plan {name} resumed")


TRIGGER_SETTLE_SECONDS = 10.0


async def _trigger(client: Client, name: str) -> tuple[str, str]:
    """Trigger one run and tell what became of it: ("started", workflow id) or ("skipped", why)."""
    before: Any = await _handle_call(client, name, "describe")
    started, skipped = before.info.num_actions, before.info.num_actions_skipped_overlap
    await _handle_call(client, name, "trigger")
    deadline = asyncio.get_running_loop().time() + TRIGGER_SETTLE_SECONDS
    while True:
        now: Any = await _handle_call(client, name, "describe")
        if now.info.num_actions > started:
            recent = now.info.recent_actions[-1].action.workflow_id if now.info.recent_actions else ""
            return "started", recent
        if now.info.num_actions_skipped_overlap > skipped:
            running = ", ".join(a.workflow_id for a in now.info.running_actions) or "an earlier run"
            return "skipped", f"{running} is still going (a plan runs one backup at a time)"
        if asyncio.get_running_loop().time() > deadline:
            return "unknown", f"the schedule reported no new run within {TRIGGER_SETTLE_SECONDS:.0f} s"
        await asyncio.sleep(0.2)


@plan_app.command("trigger")
def trigger(name: Annotated[str, typer.Argument()]) -> None:
    """Start one run now; says so when it is skipped because a run is still going (exit 1)."""
    outcome, what = with_client(lambda client: _trigger(client, name))
    if outcome == "started":
        console.print(f"plan {name} triggered: workflow {what}")
        return
    console.print(f"plan {name}: trigger {outcome}: {what}", soft_wrap=True)
    raise typer.Exit(1)


@plan_app.command("delete")
def delete(name: Annotated[str, typer.Argument()]) -> None:
    """Delete the plan (its backups stay, with their retention)."""
    with_client(lambda client: _handle_call(client, name, "delete"))
    console.print(f"plan {name} deleted")

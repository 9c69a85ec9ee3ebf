# Known-bad variants of the engine: the bug zoo (docs/patroni-rules.md §5) and classic HA mistakes,
# each rebuilt from the real engine by replacing or wrapping one rule, one helper or one input, so
# that the simulator (and `pgha sim explore`) can show that a short fault schedule breaks an
# invariant with the variant and not with the real engine. A variant never changes the real engine:
# every `decide` here runs its own copy of the rule table (the real `RULES` tuple is only read),
# feeds rules a transformed context or observation, or filters a decision; nothing in `pgha.engine`
# is assigned to. Variants whose bug is in the DCS client rather than the engine carry `DcsOptions`
# (stale serializable reads, no raft-term tracking, retries without a deadline) that `sim.run`
# passes to every node's client. Each variant's minimal reproducer is
# `scenarios/variants/<name>.yaml`.
"""Engine variants that reproduce known split-brain and data-loss bugs, for the simulator."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType

from pgha.engine.actions import ArmWatchdog, KickWatchdog
from pgha.engine.config import SyncMode
from pgha.engine.context import Ctx, make_context
from pgha.engine.decision import Decision, Reason
from pgha.engine.rules import RULES, Rule
from pgha.engine.rules_leader import lock_renewal_failed
from pgha.engine.rules_lifecycle import dcs_unreachable
from pgha.engine.rules_replica import (
    acquire_lock,
    not_healthiest,
    peers_say_not_healthiest,
    probe_peers,
)
from pgha.engine.state import NodeState
from pgha.engine.sync import sync_allows_race
from pgha.engine.values import LocalConfig, LockResult, Observation

Decide = Callable[[NodeState, Observation, LocalConfig], Decision]
Context = Callable[[NodeState, Observation, LocalConfig], Ctx]


@dataclass(frozen=True, slots=True)
class DcsOptions:
    """How the simulated etcd client behaves (the defaults are the correct client).

    Attributes:
        linearizable: reads go through the raft leader; False: serializable reads that any
            member answers from its own copy, stale while it is cut off from the leader.
        trust_lower_terms: accept answers from a member whose raft term is lower than one seen
            before (no term tracking: bug zoo 12).
        unbounded_retries: retry a request forever instead of giving up with a DCS error at
            retry_timeout (bug zoo 5).
    """

    linearizable: bool = True
    trust_lower_terms: bool = False
    unbounded_retries: bool = False


@dataclass(frozen=True, slots=True)
class Variant:
    """One known-bad engine: its decide function and the DCS client it runs with.

    Attributes:
        name: kebab-case, as `--engine-variant NAME` takes it.
        description: what the variant changes, in one or two sentences.
        bug: the bug-zoo entry (docs/patroni-rules.md §5) or classic mistake it reproduces.
        decide: the variant's engine entry point, with the signature of `pgha.engine.decide`.
        dcs: the etcd client options every node of the run uses.
    """

    name: str
    description: str
    bug: str
    decide: Decide
    dcs: DcsOptions = field(default_factory=DcsOptions)


# ---------------------------------------------------------------- building a variant engine


def replaced(old: Rule, new: Rule, rules: tuple[Rule, ...] = RULES) -> tuple[Rule, ...]:
    """A copy of `rules` with `old` replaced by `new` (ValueError: `old` is not in the table)."""
    if old not in rules:
        raise ValueError(f"{old.__name__} is not a rule of the table")
    return tuple(new if rule is old else rule for rule in rules)


def without(*dropped: Rule, rules: tuple[Rule, ...] = RULES) -> tuple[Rule, ...]:
    """A copy of `rules` without `dropped` (ValueError: one of them is not in the table)."""
    for rule in dropped:
        if rule not in rules:
            raise ValueError(f"{rule.__name__} is not a rule of the table")
    return tuple(rule for rule in rules if rule not in dropped)


@dataclass(frozen=True, slots=True)
class RuleEngine:
    """A decide function over `rules`, exactly as `pgha.engine.rules.decide` runs `RULES`.

    A value of module-level functions, so that a variant pickles (for worker processes).
    """

    rules: tuple[Rule, ...] = RULES
    context: Context = make_context

    def __call__(self, state: NodeState, obs: Observation, local: LocalConfig) -> Decision:
        ctx = self.context(state, obs, local)
        for rule in self.rules:
            decision = rule(ctx)
            if decision is not None:
                return decision
        return acquire_lock(ctx)


def engine(rules: tuple[Rule, ...] = RULES, *, context: Context = make_context) -> Decide:
    """A decide function over `rules` (with `context` building what the rules read)."""
    return RuleEngine(rules, context)


_REAL_RULES = engine()


def _proven(ctx: Ctx) -> Ctx:
    # Treat this cycle's lock as renewed: the memo says OK and the deadline runs a ttl from now.
    memo = replace(ctx.state.memo, renew=LockResult.OK)
    deadline = ctx.now + ctx.cfg.ttl_s
    return replace(ctx, state=replace(ctx.state, memo=memo, lock_deadline_mono=deadline))


# -------------------------------------------------------------- 1. no demotion on a failed renewal


def _trust_the_reread(state: NodeState, obs: Observation, local: LocalConfig) -> Ctx:
    # Patroni before PR 316: update_leader failed, so re-read; still named there: still the leader.
    ctx = make_context(state, obs, local)
    failed = ctx.state.memo.renew in (LockResult.CAS_FAILED, LockResult.DCS_ERROR)
    if failed and obs.cluster is not None and ctx.holder_is_me and ctx.pg.is_primary:
        return _proven(ctx)
    return ctx


def renewal_failed_keep_running(ctx: Ctx) -> Decision | None:
    """Variant of `lock_renewal_failed`: a failed compare-and-set never demotes."""
    if ctx.state.memo.renew is not LockResult.CAS_FAILED:
        return None
    return ctx.end(ctx.role, (), Reason.LOCK_CAS_FAILED)


NO_DEMOTE_ON_FAILED_RENEWAL = Variant(
    "no-demote-on-failed-renewal",
    "A failed lock renewal (compare-and-set mismatch or DCS error) does not demote: the primary "
    "re-reads the cluster and stays the leader while the read still names it. Its etcd client "
    "reads serializably (any member answers from its own copy, as etcd v2 reads without "
    "quorum=true did).",
    "bug zoo 1 (patroni#308, fixed by PR 316): an isolated etcd member serves stale reads and the "
    "primary never demotes; rule: a failed CAS demotes, leadership is never inferred from a read",
    engine(replaced(lock_renewal_failed, renewal_failed_keep_running), context=_trust_the_reread),
    DcsOptions(linearizable=False),
)


# ---------------------------------------------------------------- 2. trusting a stale DCS read


def _leader_by_read(state: NodeState, obs: Observation, local: LocalConfig) -> Ctx:
    # "The DCS says I hold the lock": a running primary named by its view skips the CAS.
    ctx = make_context(state, obs, local)
    memo = ctx.state.memo
    fresh_cycle = memo.renew is None and memo.acquire is None
    if obs.cluster is not None and ctx.holder_is_me and ctx.pg.is_primary and fresh_cycle:
        return _proven(ctx)
    return ctx


TRUST_STALE_READ = Variant(
    "trust-stale-read",
    "A running primary whose view names it as the holder counts that read as proof of "
    "leadership and skips the compare-and-set; its etcd client reads serializably from any "
    "member and accepts answers from members with a lower raft term.",
    "bug zoo 1, 2 and 12 (patroni#308, PR 713, patroni#3314): a stale, cut-off etcd member keeps "
    "naming the old primary; rule: leadership is proven by the holder's own CAS, and answers "
    "from a lower raft term are skipped",
    engine(context=_leader_by_read),
    DcsOptions(linearizable=False, trust_lower_terms=True),
)


# ---------------------------------------------------------------- 3. lock expiry on the wall clock


@dataclass(frozen=True, slots=True, kw_only=True)
class WallClockState(NodeState):
    """The engine state plus the lock deadline as a wall-clock time (variant 3's memory)."""

    lock_deadline_wall: float | None = None


def _as_wall_state(state: NodeState) -> WallClockState:
    if isinstance(state, WallClockState):
        return state
    return WallClockState(**{f.name: getattr(state, f.name) for f in fields(NodeState)})


def ride_out_dcs_outage(ctx: Ctx) -> Decision | None:
    """Variant of `dcs_unreachable`: a primary keeps serving while its lease still holds.

    It demotes once the lease would end within two retry_timeouts (a read and a renewal). With
    a monotonic deadline this demotes at the first failed read, as the real rule does; judged
    on the wall clock, a clock that steps back stretches the lease.
    """
    if ctx.dcs_ok:
        return None
    margin = 2 * ctx.cfg.retry_timeout_s
    keeps = ctx.pg.is_primary and not ctx.cfg.pause and ctx.holds_lock
    if keeps and ctx.now + margin < ctx.lock_deadline:
        armed = ctx.state.watchdog_timeout_s is not None
        kick = (KickWatchdog(not_after_mono=ctx.lock_deadline),) if armed else ()
        return ctx.end(ctx.role, kick, Reason.DCS_UNREACHABLE)
    return dcs_unreachable(ctx)


_WALL_ENGINE = engine(replaced(dcs_unreachable, ride_out_dcs_outage))


def wall_clock_decide(state: NodeState, obs: Observation, local: LocalConfig) -> Decision:
    """Run the engine with the lock deadline kept and judged on the wall clock.

    The deadline is remembered as a wall-clock time and shown to the rules as the monotonic time
    the wall clock reads it at now, so `holds_lock` compares the wall clock with a wall deadline.
    """
    wall = _as_wall_state(state)
    offset = obs.now_wall - obs.now_mono
    stored = wall.lock_deadline_wall
    believed = None if stored is None else stored - offset
    decision = _WALL_ENGINE(replace(wall, lock_deadline_mono=believed), obs, local)
    nxt = decision.next_state
    assert isinstance(nxt, WallClockState)  # the engine's `replace` keeps the state's class
    deadline = nxt.lock_deadline_mono
    moved = deadline is not None and deadline != believed
    new_wall = None if deadline is None else (deadline + offset if moved else stored)
    return replace(decision, next_state=replace(nxt, lock_deadline_wall=new_wall))


WALL_CLOCK_LEASE = Variant(
    "wall-clock-lease",
    "The lock deadline is kept on the wall clock (the send time + ttl, read with time.time()), "
    "and a primary that cannot reach the DCS keeps serving until that deadline is near instead "
    "of demoting at once. A wall clock stepped back keeps it writable long after its lease ended.",
    "bug zoo 2 and docs/patroni-rules.md §2.8 (clock jumps and local expiry bookkeeping; Patroni "
    "PR 3612 moves to monotonic time); rule: lock loss is judged on the node's own monotonic clock",
    wall_clock_decide,
)


# ---------------------------------------------------------------- 4. no healthiest-node check


def race_without_health_check(ctx: Ctx) -> Decision | None:
    """Variant of `not_healthiest`: a replica races with no lag, timeline or peer check.

    Only nofailover and (in synchronous mode) `/sync` membership still keep it out; a running
    primary still faces the stale-primary guard.
    """
    eligible = ctx.local.tags.can_failover and sync_allows_race(
        me=ctx.me, cfg=ctx.cfg, cluster=ctx.view
    )
    if ctx.pg.is_primary or not eligible:
        return not_healthiest(ctx)
    return None


NO_HEALTHIEST_CHECK = Variant(
    "no-healthiest-check",
    "A replica that finds the lock free races for it at once: no maximum_lag_on_failover check "
    "against /status, no check_timeline, and no probe of the other members' WAL positions.",
    "classic mistake against docs/patroni-rules.md §2.4 (is_healthiest_node) and bug zoo 7: a "
    "replica far behind wins the race and the writes it never received are lost",
    engine(
        replaced(
            not_healthiest,
            race_without_health_check,
            without(probe_peers, peers_say_not_healthiest),
        )
    ),
)


# -------------------------------------------------------------- 5. stale primary re-takes the lock


def primary_retakes_lock(ctx: Ctx) -> Decision | None:
    """Variant of `not_healthiest`: a running primary re-takes a free lock whatever its timeline."""
    if ctx.pg.is_primary:
        return None
    return not_healthiest(ctx)


STALE_PRIMARY_RETAKES_LOCK = Variant(
    "stale-primary-retakes-lock",
    "A running primary that finds the lock free takes it again without comparing its timeline "
    "with the cluster's (/history): an old primary that stalled through a failover comes back "
    "and discards the new primary's timeline.",
    "bug zoo 3 (patroni#2779, fixed by PR 2787): a stale primary wins the race after a stall; "
    "rule: a running primary re-takes the lock only if its timeline is not behind /history",
    engine(replaced(not_healthiest, primary_retakes_lock)),
)


# ---------------------------------------------------------------- 6. sync mode, async candidate


def _as_sync_standby(ctx: Ctx) -> Ctx:
    # Feed the candidate checks a `/sync` key that lists me, whatever the real one says.
    sync = ctx.view.sync
    if ctx.cfg.synchronous_mode is not SyncMode.ON or sync.leader is None:
        return ctx
    claimed = replace(sync, standbys=sync.standbys | {ctx.me})
    return replace(ctx, view=replace(ctx.view, sync=claimed))


def race_as_sync_standby(ctx: Ctx) -> Decision | None:
    """Variant of `not_healthiest`: the `/sync` membership check is skipped (all else kept)."""
    return not_healthiest(_as_sync_standby(ctx))


SYNC_ALLOWS_ASYNC_CANDIDATE = Variant(
    "sync-allows-async-candidate",
    "In synchronous mode a replica that is not in /sync may race for the lock: the candidate "
    "checks run as if /sync listed it (lag, timeline and peer checks are kept).",
    "bug zoo 8 and 9 (patroni#2819, patroni#2405 / PR 2406): an asynchronous replica is "
    "promoted in synchronous mode and acknowledged commits are lost; rule: only the /sync "
    "leader and standbys may promote",
    engine(replaced(not_healthiest, race_as_sync_standby)),
)


# ---------------------------------------------------------------- 7. the watchdog is never armed


def never_arm_watchdog(state: NodeState, obs: Observation, local: LocalConfig) -> Decision:
    """The real engine with every ArmWatchdog and KickWatchdog left out of its decisions."""
    decision = _REAL_RULES(state, obs, local)
    kept = tuple(a for a in decision.actions if not isinstance(a, ArmWatchdog | KickWatchdog))
    unarmed = replace(decision.next_state, watchdog_timeout_s=None)
    return replace(decision, actions=kept, next_state=unarmed)


WATCHDOG_NOT_ARMED = Variant(
    "watchdog-not-armed",
    "The agent never arms its watchdog (the limit of disabling it before the safepoint), so "
    "nothing resets a primary whose agent stalls: its PostgreSQL stays writable after the lock "
    "expired and a replica promoted.",
    "bug zoo 13 (patroni#3639: watchdog closed before the safepoint, backends outlive the lock) "
    "and docs/patroni-rules.md §2.8, §2.9 (a stalled agent is only covered by the watchdog)",
    never_arm_watchdog,
)


# ---------------------------------------------------------------- 8. unbounded DCS retries


UNBOUNDED_DCS_RETRIES = Variant(
    "unbounded-dcs-retries",
    "The real engine with an etcd client that retries every request forever instead of failing "
    "within retry_timeout: a primary cut off from etcd hangs in its read and is never demoted.",
    "bug zoo 5 (patroni#1981: kazoo retried forever, the primary stayed writable); rule: every "
    "DCS operation fails within retry_timeout",
    engine(),
    DcsOptions(unbounded_retries=True),
)


# ---------------------------------------------------------------- 9. failsafe on a partial quorum


def _half_acked_is_enough(ctx: Ctx) -> Ctx:
    # Count the failsafe round as complete once half of the other members accepted it.
    acks, listed = ctx.state.memo.failsafe_acks, ctx.state.last_failsafe
    if acks is None or not listed:
        return ctx
    others = tuple(n for n in listed if n != ctx.me)
    if 2 * len(set(acks) & set(others)) < len(others):
        return ctx
    memo = replace(ctx.state.memo, failsafe_acks=others)
    return replace(ctx, state=replace(ctx.state, memo=memo))


def failsafe_on_half_the_acks(ctx: Ctx) -> Decision | None:
    """Variant of `dcs_unreachable`: failsafe mode continues when half the members answered."""
    return dcs_unreachable(_half_acked_is_enough(ctx))


FAILSAFE_PARTIAL_ACKS = Variant(
    "failsafe-partial-acks",
    "In failsafe mode a primary that lost the DCS keeps running when half of the other members "
    "accepted its POST /failsafe, instead of requiring every member listed in /failsafe.",
    "classic mistake against docs/patroni-rules.md §2.10 (failsafe continues only if all members "
    "answer): a member that did not hear from the primary races and promotes",
    engine(replaced(dcs_unreachable, failsafe_on_half_the_acks)),
)


VARIANTS: Mapping[str, Variant] = MappingProxyType(
    {
        v.name: v
        for v in (
            NO_DEMOTE_ON_FAILED_RENEWAL,
            TRUST_STALE_READ,
            WALL_CLOCK_LEASE,
            NO_HEALTHIEST_CHECK,
            STALE_PRIMARY_RETAKES_LOCK,
            SYNC_ALLOWS_ASYNC_CANDIDATE,
            WATCHDOG_NOT_ARMED,
            UNBOUNDED_DCS_RETRIES,
            FAILSAFE_PARTIAL_ACKS,
        )
    }
)

__all__ = ["VARIANTS", "DcsOptions", "Variant"]

/** @internal */
import * as CoreConsistency from "@effect-sql-router/core/Consistency"
import * as CoreSelection from "@effect-sql-router/core/Selection"
import * as Health from "@effect-sql-router/core/Health"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as TxRef from "effect/TxRef"
import type * as Consistency from "../../Consistency.js"
import type * as RouterConfig from "../../RouterConfig.js"
import { ReplicaNotCaughtUp } from "../../RouterError.js"
import type * as Selection from "../../Selection.js"
import * as Topology from "../../Topology.js"
import { currentMaxStaleness, currentReadPolicy, emptyState, SessionTag } from "../consistency.js"
import { describe, errorCode, isConnectionError, isConnectTimeout, isReadOnlyViolation } from "../errors.js"
import { formatLsn } from "../health/monitor.js"
import { healthTransitions } from "../metrics.js"
import type { RouterState } from "../routerState.js"
import * as SelectionInternal from "./selection.js"
import * as Waiting from "../health/waiting.js"
import * as NodeInternal from "../node.js"
import { peek, pickNow, pickReplica, picksNow, unsafeRelease } from "./pick.js"
import { pickUnderBarrier, plainRequirement, refreshReplayPositions, withBarrier } from "./barrier.js"

// The one home of the read decision: where a read goes (route, strategy,
// session and staleness filters, the DDL barrier, `primaryReads: "overflow"`),
// the in-flight bookkeeping, and the safety net's rule for a failed read.
// Regions (SqlRouter), the routed client and Consistency all decide here; the
// rules themselves (strategies, barrier, session requirement) are the core's.

/** @internal */
export type Route = "auto" | "primary" | "replica"

/** @internal */
export const currentRoute = Context.Reference<Route>("effect-sql-router/SqlRouter/currentRoute", {
  defaultValue: () => "auto"
})

/** The requirement a read carries from the configuration's `maxLag`. @internal */
export const configRequirement = (config: RouterConfig.Resolved): Selection.Requirement =>
  config.maxLag.time === undefined && config.maxLag.bytes === undefined
    ? CoreSelection.anyHealthy
    : {
      maxLagMillis: config.maxLag.time === undefined ? undefined : Duration.toMillis(config.maxLag.time),
      maxLagBytes: config.maxLag.bytes,
      minLsn: undefined
    }

// The steps the read paths take outside the decision, from one place.

/** @internal */
export { peek, pickNow, pickReplica, picksNow, releaseReplica, unsafeRelease } from "./pick.js"
/** @internal */
export { extendSchemaBarrier, extendsSchemaBarrier, pickUnderBarrier, plainRequirement, raiseSchemaBarrier } from "./barrier.js"

// -----------------------------------------------------------------------------
// Deciding a read
// -----------------------------------------------------------------------------

const none = Effect.succeed(Option.none<Topology.Replica>())

/** Waits (bounded by the policy) until a replica has replayed the session's position. */
const awaitCaughtUp = (state: RouterState, requirement: Selection.Requirement, policy: Consistency.ReadPolicy) =>
  Effect.gen(function*() {
    const start = yield* Clock.currentTimeMillis
    const maxWait = Duration.toMillis(policy.maxWait)
    for (;;) {
      yield* refreshReplayPositions(state)
      const chosen = yield* pickReplica(state, requirement)
      if (Option.isSome(chosen)) return chosen
      const waited = (yield* Clock.currentTimeMillis) - start
      if (waited >= maxWait) {
        return policy.onNotCaughtUp === "fail"
          ? yield* new ReplicaNotCaughtUp({ required: formatLsn(requirement.minLsn!), waitedMillis: waited })
          : Option.none<Topology.Replica>()
      }
      yield* Effect.sleep(Duration.millis(Math.min(10, maxWait - waited)))
    }
  })

/** What a read in a session (its position) or under a staleness bound needs of a replica. */
const sessionRequirement = (
  state: RouterState,
  current: Consistency.SessionState,
  staleness: Option.Option<Duration.Duration>
): Selection.Requirement =>
  CoreConsistency.requirement(
    state.requirement,
    current,
    staleness._tag === "Some" ? Duration.toMillis(staleness.value) : undefined
  )

/** A session or a staleness bound narrows the choice: the sticky window, the position, the bound. */
const chooseInSession = (
  state: RouterState,
  fiber: Fiber.Fiber<unknown, unknown>,
  route: Route,
  session: Option.Option<Ref.Ref<Consistency.SessionState>>,
  staleness: Option.Option<Duration.Duration>
): Effect.Effect<Option.Option<Topology.Replica>, ReplicaNotCaughtUp> =>
  Effect.gen(function*() {
    const current = session._tag === "Some" ? yield* Ref.get(session.value) : emptyState
    const sticky = state.config.consistency.stickyPrimaryAfterWrite
    if (sticky !== undefined && route !== "replica" && current.lastWriteAt !== undefined) {
      const now = yield* Clock.currentTimeMillis
      if (CoreConsistency.sticksToPrimary(current.lastWriteAt, now, Duration.toMillis(sticky))) {
        return Option.none<Topology.Replica>()
      }
    }
    const requirement = sessionRequirement(state, current, staleness)
    const chosen = peek(state.schemaBarrier) === undefined
      ? yield* pickReplica(state, requirement)
      : yield* pickUnderBarrier(state, (state) => withBarrier(state, requirement))
    if (Option.isSome(chosen) || current.lsn === undefined) return chosen
    const policy = Option.getOrElse(fiber.getRef(currentReadPolicy), () => state.config.consistency)
    return yield* awaitCaughtUp(state, withBarrier(state, requirement), policy)
  })

/**
 * Where a read in `fiber` goes, before overflow: the one read decision, for
 * statements and regions alike. `undefined` means the primary; a replica was
 * picked now and counted in flight (no session, no staleness bound, no DDL
 * barrier, a strategy with no random draw: the common case, synchronous and
 * infallible); an effect decides when it runs (at most one STM commit without
 * a session or a staleness bound). Call it when the read runs, not before.
 * @internal
 */
export const decideRead = (
  state: RouterState,
  fiber: Fiber.Fiber<unknown, unknown>
): Topology.Replica | undefined | Effect.Effect<Option.Option<Topology.Replica>, ReplicaNotCaughtUp> => {
  const route = fiber.getRef(currentRoute)
  if (route === "primary") return undefined
  const staleness = fiber.getRef(currentMaxStaleness)
  if (Context.getOrUndefined(fiber.context, SessionTag) === undefined && staleness._tag === "None") {
    if (peek(state.schemaBarrier) !== undefined) return pickUnderBarrier(state, plainRequirement)
    return picksNow(state) ? pickNow(state, state.requirement) : pickReplica(state, state.requirement)
  }
  return chooseInSession(state, fiber, route, Context.getOption(fiber.context, SessionTag), staleness)
}

/**
 * `decideRead` as an effect: `none` means the primary.
 * @internal
 */
export const decideReplica = (
  state: RouterState,
  fiber: Fiber.Fiber<unknown, unknown>
): Effect.Effect<Option.Option<Topology.Replica>, ReplicaNotCaughtUp> => {
  const decision = decideRead(state, fiber)
  return decision === undefined ? none : isPending(decision) ? decision : Effect.succeed(Option.some(decision))
}

/**
 * Whether `decideRead` left the choice to an effect. An `in` test: the hot
 * path cannot afford `Effect.isEffect`, whose `dual` allocates.
 * @internal
 */
export const isPending = <A extends object>(
  decision: A | Effect.Effect<Option.Option<Topology.Replica>, ReplicaNotCaughtUp>
): decision is Effect.Effect<Option.Option<Topology.Replica>, ReplicaNotCaughtUp> => Effect.TypeId in decision

// -----------------------------------------------------------------------------
// Hedged reads
// -----------------------------------------------------------------------------

/** Among the eligible replicas other than `first`, the one with the fewest reads in flight, counted (now). */
const acquireOther = (
  topology: Topology.Topology,
  requirement: Selection.Requirement,
  first: Topology.Replica
): Option.Option<Topology.Replica> => {
  const replicas = peek(topology.replicas)
  let best: Topology.Replica | undefined
  let bestLoad = Infinity
  for (let i = 0; i < replicas.length; i++) {
    const replica = replicas[i]!
    if (replica === first || !CoreSelection.isEligible(SelectionInternal.current, replica, i, requirement)) continue
    const load = peek(replica.inFlight)
    if (load < bestLoad) {
      best = replica
      bestLoad = load
    }
  }
  if (best === undefined) return Option.none()
  SelectionInternal.unsafeSet(best.inFlight, bestLoad + 1)
  return Option.some(best)
}

/**
 * The replica a hedged read also starts on: eligible for the same read (the
 * session's position, the staleness bound, the DDL barrier), not `first`, the
 * one with the fewest reads in flight, and counted in flight in the same
 * transaction. `none` when no other replica fits: the read is not hedged.
 * Never the primary, and it never waits for a replica to catch up.
 * @internal
 */
export const pickHedge = (
  state: RouterState,
  fiber: Fiber.Fiber<unknown, unknown>,
  first: Topology.Replica
): Effect.Effect<Option.Option<Topology.Replica>> => {
  const staleness = fiber.getRef(currentMaxStaleness)
  const session = Context.getOption(fiber.context, SessionTag)
  if (session._tag === "None" && staleness._tag === "None") {
    return Effect.sync(() => acquireOther(state.topology, plainRequirement(state), first))
  }
  return Effect.map(
    session._tag === "Some" ? Ref.get(session.value) : Effect.succeed(emptyState),
    (current) => acquireOther(state.topology, withBarrier(state, sessionRequirement(state, current, staleness)), first)
  )
}

/**
 * `primaryReads: "overflow"`: a read whose replica pool has no session to
 * spare goes to the primary when the primary has one. It gives the replica's
 * in-flight count back itself. Only this setting pays for reading the pools'
 * occupancy.
 * @internal
 */
export const overflowNow = (
  state: RouterState,
  chosen: Topology.Replica | undefined
): Topology.Replica | undefined | Effect.Effect<Topology.Replica | undefined> => {
  if (state.config.primaryReads !== "overflow" || chosen === undefined) return chosen
  return Effect.map(
    Effect.zip(NodeInternal.isBusy(chosen.node), NodeInternal.isBusy(peek(state.topology.primary))),
    ([replicaBusy, primaryBusy]) => {
      if (!replicaBusy || primaryBusy) return chosen
      unsafeRelease(chosen)
      return undefined
    }
  )
}

/** `overflowNow` over an optional choice. @internal */
export const overflow = (
  state: RouterState,
  chosen: Option.Option<Topology.Replica>
): Effect.Effect<Option.Option<Topology.Replica>> => {
  if (Option.isNone(chosen)) return Effect.succeed(chosen)
  const after = overflowNow(state, chosen.value)
  return after === undefined
    ? Effect.succeedNone
    : Effect.isEffect(after)
    ? Effect.map(after, Option.fromNullishOr)
    : Effect.succeed(chosen)
}

/**
 * Where a read goes: `none` means the primary.
 * @internal
 */
export const chooseRead = (state: RouterState): Effect.Effect<Option.Option<Topology.Replica>, ReplicaNotCaughtUp> =>
  Effect.withFiber((fiber) =>
    state.config.primaryReads === "overflow"
      ? Effect.flatMap(decideReplica(state, fiber), (chosen) => overflow(state, chosen))
      : decideReplica(state, fiber)
  )

// -----------------------------------------------------------------------------
// The safety net
// -----------------------------------------------------------------------------

/**
 * What to do with a read that failed on a replica: `primary` when the replica
 * refused it as a write (25006: it must run on the primary, once, as a
 * write), `primary-read` when it found no such table, column or function
 * while it may be behind the primary (it has not replayed some DDL yet: once
 * more, as a read, on the primary),
 * `elsewhere` when the replica is gone (connection-class error or read
 * timeout: take it out of rotation, run once more on another node), `fail`
 * otherwise (the statement itself is wrong).
 * @internal
 */
export const afterReadFailure = (
  state: RouterState,
  replica: Topology.Replica,
  error: unknown
): "primary" | "primary-read" | "elsewhere" | "fail" =>
  isReadOnlyViolation(error)
    ? "primary"
    : isUndefinedObject(error) && mayBeBehind(state, replica)
    ? "primary-read"
    : isConnectionError(error)
    ? "elsewhere"
    : "fail"

/** 42P01, 42703, 42883: undefined table, column, function (a replica that has not replayed some DDL). */
const isUndefinedObject = (error: unknown): boolean => {
  const code = errorCode(error)
  return code === "42P01" || code === "42703" || code === "42883"
}

/** Unless the replica is known to have replayed what the primary last reported, it may be behind. */
const mayBeBehind = (state: RouterState, replica: Topology.Replica): boolean => {
  const replay = peek(replica.probe)?.replayLsn
  const primary = peek(state.topology.primaryLsn)
  return replay === undefined || primary === undefined || replay < primary || peek(state.schemaBarrier) !== undefined
}

/**
 * A failure seen by real work on a replica: a connection-class error takes
 * it out of rotation at once (passive detection); the probes bring it back.
 * A connect timeout only gets it probed at once (`PgErrors.isConnectTimeout`).
 * @internal
 */
export const observeFailure = (replica: Topology.Replica, failure: unknown): Effect.Effect<void> => {
  // Regions report an Effect Cause; statements report the error itself.
  const error = Cause.isCause(failure) ? Cause.squash(failure) : failure
  if (!isConnectionError(error)) return Effect.void
  // A connection not ready in time (a crowded host, many instances opening theirs at once) is no proof the
  // replica is gone: its watcher probes it at once, and the probe decides.
  if (isConnectTimeout(error)) return Effect.sync(() => NodeInternal.countFailure(replica.node))
  return Effect.flatMap(
    Effect.tx(TxRef.modify(replica.health, (health) => {
      const { health: next, wasUp } = Health.afterFailure(health)
      return [wasUp, next] as const
    })),
    (wasHealthy) => {
      // Traffic that fails: its health watcher probes it at once.
      NodeInternal.countFailure(replica.node)
      return wasHealthy
        ? Effect.logWarning(`replica ${replica.node.id} left rotation: ${describe(error)}`).pipe(
          Effect.andThen(Effect.sync(() => Waiting.releaseWaiting(replica))),
          Effect.andThen(Metric.update(Metric.withAttributes(healthTransitions, { to: "unhealthy" }), 1))
        )
        : Effect.void
    }
  )
}

/** Whether `fiber` runs in a causal session. @internal */
export const inSession = (fiber: Fiber.Fiber<unknown, unknown>): boolean =>
  Context.getOrUndefined(fiber.context, SessionTag) !== undefined

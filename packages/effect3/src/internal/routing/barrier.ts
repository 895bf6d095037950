/** @internal */
import * as Barrier from "@effect-sql-router/core/Barrier"
import * as Health from "@effect-sql-router/core/Health"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as STM from "effect/STM"
import * as TRef from "effect/TRef"
import type * as Selection from "../../Selection.js"
import * as Topology from "../../Topology.js"
import { parseLsn } from "../health/monitor.js"
import type { RouterState } from "../routerState.js"
import { peek, pickReplica } from "./pick.js"

// The DDL barrier: after a schema change, reads go only to replicas that
// have replayed it (or to the primary) until all have, or it has been up
// too long. The rule is the core's `Barrier`; this is its state and clock.

const barrierRequirements = new WeakMap<RouterState, Selection.Requirement>()

/**
 * The requirement of a read with no session: the configuration's, or, while
 * the DDL barrier is up, the configuration's with the barrier's position
 * (built once per barrier position, not per read).
 * @internal
 */
export const plainRequirement = (state: RouterState): Selection.Requirement => {
  const barrier = peek(state.schemaBarrier)
  if (barrier === undefined) return state.requirement
  let requirement = barrierRequirements.get(state)
  if (requirement === undefined || requirement.minLsn !== barrier) {
    requirement = { ...state.requirement, minLsn: barrier }
    barrierRequirements.set(state, requirement)
  }
  return requirement
}

/** The requirement raised to the DDL barrier's position while it is up. @internal */
export const withBarrier = (state: RouterState, requirement: Selection.Requirement): Selection.Requirement =>
  Barrier.requirementUnder(requirement, peek(state.schemaBarrier))

/**
 * When the barrier went up, and when a read last asked the replicas where
 * they are: real time (`Date.now`), whatever the fiber's clock, since what
 * it waits for (replay) runs in real time, also under `TestClock`.
 */
interface BarrierClock {
  raisedAt: number
  /** `consistency.afterSchemaChange`: how long after it writes still move the barrier. */
  readonly extendMillis: number
  refreshedAt: number
}
const barrierClocks = new WeakMap<RouterState, BarrierClock>()

/**
 * Raises the DDL barrier to `lsn` (the primary's position after a schema
 * change): reads go only to replicas at or past it, or to the primary.
 * @internal
 */
export const raiseSchemaBarrier = (state: RouterState, lsn: bigint): Effect.Effect<void> =>
  Effect.suspend(() => {
    barrierClocks.set(state, {
      raisedAt: Date.now(),
      refreshedAt: 0,
      extendMillis: Duration.toMillis(state.config.consistency.afterSchemaChange)
    })
    return STM.commit(TRef.update(state.schemaBarrier, (current) => Barrier.maxLsn(current, lsn)))
  })

/**
 * A write committed soon after a schema change (within
 * `consistency.afterSchemaChange`, 1 second by default): the barrier moves to
 * the write's position (up again if the replicas had passed it), so that a
 * read right after it (the next step of a migration or of a test's setup:
 * create, insert, select) sees it, session or not. Later writes leave it
 * alone: under a steady write load the barrier must not chase the primary
 * (the replicas would always be behind it and every read would go to the
 * primary). The window and the time bound count from the schema change.
 * @internal
 */
export const extendSchemaBarrier = (state: RouterState, lsn: bigint): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (!extendsSchemaBarrier(state)) return Effect.void
    barrierClocks.get(state)!.refreshedAt = 0
    return STM.commit(TRef.update(state.schemaBarrier, (current) => Barrier.maxLsn(current, lsn)))
  })

/** Whether a write now would move the barrier: within the window after a schema change. @internal */
export const extendsSchemaBarrier = (state: RouterState): boolean => {
  const clock = barrierClocks.get(state)
  if (clock === undefined) return false
  if (Barrier.extendedBy(Date.now() - clock.raisedAt, clock.extendMillis)) return true
  // Past the window with the barrier down: forget the clock, so that writes
  // until the next schema change pay one lookup and no clock read.
  if (peek(state.schemaBarrier) === undefined) barrierClocks.delete(state)
  return false
}

/**
 * A pick while the DDL barrier is up. At most one read per few milliseconds
 * first asks the healthy replicas where they are, so that the router's view
 * of their replay positions is fresh; when all have passed the barrier (or it
 * has been up too long) it comes down, and the read is picked as usual.
 * Schema changes are rare: only the reads right after one pay this, and no
 * fiber is forked for it.
 * @internal
 */
export const pickUnderBarrier = (
  state: RouterState,
  requirement: (state: RouterState) => Selection.Requirement
): Effect.Effect<Option.Option<Topology.Replica>> =>
  Effect.zipRight(refreshBarrier(state), Effect.suspend(() => pickReplica(state, requirement(state))))

/**
 * At most once per few milliseconds while the DDL barrier is up: ask the
 * healthy replicas where they are, and lower the barrier if all have passed
 * it (or it has been up too long).
 */
const refreshBarrier = (state: RouterState): Effect.Effect<void> =>
  Effect.suspend(() => {
    const now = Date.now()
    const barrier = peek(state.schemaBarrier)
    const clock = barrierClocks.get(state)
    if (barrier === undefined || clock === undefined || !Barrier.refreshDue(now, clock.refreshedAt)) {
      return Effect.void
    }
    clock.refreshedAt = now
    // Judged on the positions just read, not on the ones before them.
    return Effect.zipRight(
      refreshReplayPositions(state),
      Effect.suspend(() => lowerIfReplayed(state, barrier, now - clock.raisedAt))
    )
  })

/** The replay positions of the replicas up by their probes, as the monitor last recorded them. */
function* replaysOfUp(state: RouterState): Iterable<bigint | undefined> {
  for (const replica of peek(state.topology.replicas)) {
    if (Health.probesUp(peek(replica.health))) yield peek(replica.probe)?.replayLsn
  }
}

const lowerIfReplayed = (state: RouterState, barrier: bigint, upForMillis: number): Effect.Effect<void> => {
  if (!Barrier.lowers(barrier, upForMillis, replaysOfUp(state))) return Effect.void
  // Lowered only if no newer schema change raised it meanwhile.
  return STM.commit(TRef.update(state.schemaBarrier, (current) => current === barrier ? undefined : current))
}

/**
 * Asks each healthy replica for its replay position now, and records it:
 * what the monitor last saw may be a probe interval old.
 */
/** @internal */
export const refreshReplayPositions = (state: RouterState) =>
  Effect.gen(function*() {
    const replicas = yield* STM.commit(TRef.get(state.topology.replicas))
    const timeout = state.config.connectTimeout
    yield* Effect.forEach(replicas, (replica) =>
      Effect.gen(function*() {
        if (!(yield* STM.commit(Topology.isHealthy(replica)))) return
        const row = yield* Effect.tryPromise(() =>
          replica.node.pool.query<{ lsn: string | null }>("SELECT pg_last_wal_replay_lsn()::text AS lsn")
        ).pipe(Effect.timeout(timeout), Effect.option)
        const lsn = Option.flatMap(row, (r) => Option.fromNullable(parseLsn(r.rows[0]?.lsn)))
        if (Option.isNone(lsn)) return
        const at = yield* Clock.currentTimeMillis
        yield* STM.commit(TRef.update(replica.probe, (probe): Topology.Probe =>
          probe === undefined
            ? { at, ok: true, replayLsn: lsn.value, lagBytes: undefined, lagMillis: undefined, error: undefined }
            : { ...probe, replayLsn: probe.replayLsn !== undefined && probe.replayLsn > lsn.value ? probe.replayLsn : lsn.value }))
      }), { concurrency: "unbounded", discard: true })
  })

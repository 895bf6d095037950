/** @internal */
import * as Selection from "@effect-sql-router/core/Selection"
import type * as TxRef from "effect/TxRef"
import * as Topology from "../../Topology.js"

// The selection strategies are pure choices in the core (`Selection` there).
// Two drivers run them: a transaction over the topology's TxRefs
// (`Selection.select`, `acquire`: the public, composable form) and the read
// path's synchronous pick (`unsafeAcquire`, here), which reads the same
// TxRefs outside a transaction and writes the cursor and in-flight count the
// way a commit does.

// -----------------------------------------------------------------------------
// TxRefs outside a transaction
// -----------------------------------------------------------------------------

/**
 * The current value of a TxRef, read outside a transaction. A transaction's
 * commit is one synchronous step (`Effect.tx` validates its journal and
 * writes every reference at once), so this is the value a one-reference
 * read-only transaction would see, without the transaction's cost.
 * @internal
 */
export const peek = <A>(ref: TxRef.TxRef<A>): A => ref.value

/**
 * Writes a TxRef outside a transaction, the way a commit does: a new version
 * (so that a transaction which read the old one runs again instead of
 * committing), then wake the transactions waiting on it (`Effect.txRetry`).
 * Atomic for the reason `peek` is. The waiters wake in a later microtask, as
 * a commit schedules them: a waiter resumed here would run before the
 * caller's next write (the pick writes the cursor, then the count).
 * @internal
 */
export const unsafeSet = <A>(ref: TxRef.TxRef<A>, value: A): void => {
  if (!Object.is(value, ref.value)) {
    ref.version = ref.version + 1
    ref.value = value
  }
  if (ref.pending.size > 0) {
    const waiting = Array.from(ref.pending.values())
    ref.pending.clear()
    queueMicrotask(() => {
      for (const wake of waiting) wake()
    })
  }
}

// -----------------------------------------------------------------------------
// The replicas as the choices see them
// -----------------------------------------------------------------------------

// The slow start's draws: a golden-ratio sequence, so the admitted share
// follows the ramp closely with no call to Random on the read path.
let rampDraw = 0

/** Whether a replica within its ramp takes this read: now, by the next draw. @internal */
export const rampAdmitsNow = (ramp: Topology.Ramp): boolean =>
  Topology.rampAdmits(ramp, Date.now(), rampDraw = Selection.nextRampDraw(rampDraw))

/** The references as they are now, outside a transaction. @internal */
export const current: Selection.View<Topology.Replica> = {
  health: (replica) => replica.health.value,
  probe: (replica) => replica.probe.value,
  inFlight: (replica) => replica.inFlight.value,
  rampAdmits: rampAdmitsNow
}

/** A snapshot's view (the transactional driver's). @internal */
export const seen: Selection.View<Selection.Seen> = Selection.viewOfSeen(rampAdmitsNow)

/**
 * The read path's pick, outside a transaction: chooses by `strategy`, moves
 * the cursor and counts the read in flight, all in one synchronous step (so
 * no transaction can see half of it). With `slowStart`, a pick that found
 * only ramping replicas is made again taking them in full.
 * @internal
 */
export const unsafeAcquire = (
  strategy: Selection.Strategy,
  topology: Topology.Topology,
  requirement: Selection.Requirement,
  random: number,
  slowStart: boolean
): Topology.Replica | undefined => {
  const replicas = topology.replicas.value
  const cursor = topology.cursor.value
  let position = strategy.choose(replicas, cursor, requirement, random, current)
  if (position === undefined && slowStart) {
    position = strategy.choose(replicas, cursor, Selection.ignoringRamp(requirement), random, current)
  }
  if (position === undefined) return undefined
  const chosen = replicas[position]!
  if (strategy.movesCursor) unsafeSet(topology.cursor, position + 1)
  unsafeSet(chosen.inFlight, chosen.inFlight.value + 1)
  return chosen
}

/** Gives back a read's in-flight count, outside a transaction (a driver callback, where no fiber runs). @internal */
export const unsafeRelease = (replica: Topology.Replica): void => unsafeSet(replica.inFlight, replica.inFlight.value - 1)

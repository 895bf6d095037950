/** @internal */
import * as Selection from "@effect-sql-router/core/Selection"
import type * as TRef from "effect/TRef"
import * as Topology from "../../Topology.js"

// The selection strategies are pure choices in the core (`Selection` there).
// Two drivers run them: an STM transaction (`Selection.select`, `acquire`:
// the public, composable form) and the read path's synchronous pick
// (`unsafeAcquire`, here), which reads the same TRefs outside a transaction
// and writes the cursor and in-flight count the way a commit does.

// -----------------------------------------------------------------------------
// TRefs outside a transaction
// -----------------------------------------------------------------------------

interface Versioned<A> {
  readonly value: A
}

interface Cell<A> {
  versioned: Versioned<A>
  todos: Map<number, () => unknown>
}

/**
 * The current value of a TRef, read outside a transaction. JavaScript runs
 * one STM commit at a time and every commit is synchronous, so this is the
 * same snapshot a one-reference read-only transaction would see, without the
 * commit's cost.
 * @internal
 */
export const peek = <A>(ref: TRef.TRef<A>): A => (ref as unknown as Cell<A>).versioned.value

/**
 * Writes a TRef outside a transaction, the way a commit does: a new version
 * (so that a transaction which read the old one runs again), then wake the
 * transactions waiting on it. Atomic for the reason `peek` is.
 * @internal
 */
export const unsafeSet = <A>(ref: TRef.TRef<A>, value: A): void => {
  const cell = ref as unknown as Cell<A>
  const Version = cell.versioned.constructor as new(value: A) => Versioned<A>
  cell.versioned = new Version(value)
  if (cell.todos.size > 0) {
    const todos = cell.todos
    cell.todos = new Map()
    for (const todo of todos.values()) todo()
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
  health: (replica) => peek(replica.health),
  probe: (replica) => peek(replica.probe),
  inFlight: (replica) => peek(replica.inFlight),
  rampAdmits: rampAdmitsNow
}

/** A snapshot's view (the STM driver's). @internal */
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
  const replicas = peek(topology.replicas)
  const cursor = peek(topology.cursor)
  let position = strategy.choose(replicas, cursor, requirement, random, current)
  if (position === undefined && slowStart) {
    position = strategy.choose(replicas, cursor, Selection.ignoringRamp(requirement), random, current)
  }
  if (position === undefined) return undefined
  const chosen = replicas[position]!
  if (strategy.movesCursor) unsafeSet(topology.cursor, position + 1)
  unsafeSet(chosen.inFlight, peek(chosen.inFlight) + 1)
  return chosen
}

/** Gives back a read's in-flight count, outside a transaction (a driver callback, where no fiber runs). @internal */
export const unsafeRelease = (replica: Topology.Replica): void => unsafeSet(replica.inFlight, peek(replica.inFlight) - 1)

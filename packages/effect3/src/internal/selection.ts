/** @internal */
import type * as TRef from "effect/TRef"
import type { Selection as Name } from "../RouterConfig.js"
import type { Requirement } from "../Selection.js"
import * as Topology from "../Topology.js"

// The selection strategies, once: pure choices over the replicas as a reader
// sees them. Two drivers run them: an STM transaction (`Selection.select`,
// `acquire`: the public, composable form) and the read path's synchronous
// pick (`unsafeAcquire`), which reads the same TRefs outside a transaction and
// writes the cursor and in-flight count the way a commit does. A new strategy
// is one entry in `strategies` (and its name in `RouterConfig.selections`).

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
// Eligibility
// -----------------------------------------------------------------------------

/** @internal */
export const anyHealthy: Requirement = { maxLagMillis: undefined, maxLagBytes: undefined, minLsn: undefined }

const anyHealthyIgnoringRamp: Requirement = { ...anyHealthy, ignoreRamp: true }

/** @internal */
export const ignoringRamp = (requirement: Requirement): Requirement =>
  requirement === anyHealthy ? anyHealthyIgnoringRamp : { ...requirement, ignoreRamp: true }

// The slow start's draws: a golden-ratio sequence in [0, 1), so the admitted
// share follows the ramp closely with no call to Random on the read path.
let rampDraw = 0
const nextRampDraw = (): number => (rampDraw = (rampDraw + 0.6180339887498949) % 1)

const rampSkips = (health: Topology.Health, requirement: Requirement): boolean =>
  health.ramp !== undefined && requirement.ignoreRamp !== true &&
  !Topology.rampAdmits(health.ramp, Date.now(), nextRampDraw())

const withinBounds = (probe: Topology.Probe | undefined, requirement: Requirement): boolean => {
  if (requirement.maxLagMillis !== undefined && !(probe?.lagMillis !== undefined && probe.lagMillis <= requirement.maxLagMillis)) {
    return false
  }
  if (requirement.maxLagBytes !== undefined && !(probe?.lagBytes !== undefined && probe.lagBytes <= requirement.maxLagBytes)) {
    return false
  }
  if (requirement.minLsn !== undefined && !(probe?.replayLsn !== undefined && probe.replayLsn >= requirement.minLsn)) {
    return false
  }
  return true
}

/**
 * How a driver sees each replica's references: by the replica (read now), or
 * by its position (from a transaction's snapshot).
 * @internal
 */
export interface Reader {
  readonly health: (replica: Topology.Replica, index: number) => Topology.Health
  readonly probe: (replica: Topology.Replica, index: number) => Topology.Probe | undefined
  readonly inFlight: (replica: Topology.Replica, index: number) => number
}

/** The references as they are now, outside a transaction. @internal */
export const current: Reader = {
  health: (replica) => peek(replica.health),
  probe: (replica) => peek(replica.probe),
  inFlight: (replica) => peek(replica.inFlight)
}

/** @internal */
export const isEligible = (
  reader: Reader,
  replica: Topology.Replica,
  index: number,
  requirement: Requirement
): boolean => {
  const health = reader.health(replica, index)
  if (!Topology.inRotation(health) || rampSkips(health, requirement)) return false
  return requirement === anyHealthy || requirement === anyHealthyIgnoringRamp ||
    withinBounds(reader.probe(replica, index), requirement)
}

// -----------------------------------------------------------------------------
// The strategies
// -----------------------------------------------------------------------------

/**
 * A strategy's choice: the position of the chosen replica (or -1 for none),
 * and whether the round-robin cursor moves past it.
 * @internal
 */
export interface Strategy {
  readonly usesRandom: boolean
  /** Whether a choice moves the cursor to the position after it. */
  readonly movesCursor: boolean
  readonly choose: (
    replicas: ReadonlyArray<Topology.Replica>,
    cursor: number,
    requirement: Requirement,
    random: number,
    reader: Reader
  ) => number
}

const roundRobin: Strategy["choose"] = (replicas, cursor, requirement, _random, reader) => {
  const n = replicas.length
  for (let i = 0; i < n; i++) {
    const position = (cursor + i) % n
    if (isEligible(reader, replicas[position]!, position, requirement)) return position
  }
  return -1
}

const random: Strategy["choose"] = (replicas, _cursor, requirement, draw, reader) => {
  const eligible: Array<number> = []
  for (let i = 0; i < replicas.length; i++) {
    if (isEligible(reader, replicas[i]!, i, requirement)) eligible.push(i)
  }
  return eligible.length === 0 ? -1 : eligible[Math.min(eligible.length - 1, Math.floor(draw * eligible.length))]!
}

/** The eligible replica with the least of `measure`; ties go to the first after the cursor. */
const least = (measure: (reader: Reader, replica: Topology.Replica, index: number) => number): Strategy["choose"] =>
(replicas, cursor, requirement, _random, reader) => {
  const n = replicas.length
  let best = -1
  let bestValue = Infinity
  for (let i = 0; i < n; i++) {
    const position = (cursor + i) % n
    const replica = replicas[position]!
    if (!isEligible(reader, replica, position, requirement)) continue
    const value = measure(reader, replica, position)
    if (best === -1 || value < bestValue) {
      best = position
      bestValue = value
    }
  }
  return best
}

/** Every strategy, by name. @internal */
export const strategies: { readonly [K in Name]: Strategy } = {
  "round-robin": { usesRandom: false, movesCursor: true, choose: roundRobin },
  "random": { usesRandom: true, movesCursor: false, choose: random },
  "least-connections": {
    usesRandom: false,
    movesCursor: true,
    choose: least((reader, replica, index) => reader.inFlight(replica, index))
  },
  "least-lag": {
    usesRandom: false,
    movesCursor: true,
    // A replica never probed counts as furthest behind.
    choose: least((reader, replica, index) => reader.probe(replica, index)?.lagBytes ?? Number.MAX_SAFE_INTEGER)
  }
}

/**
 * The read path's pick, outside a transaction: chooses by `strategy`, moves
 * the cursor and counts the read in flight, all in one synchronous step (so
 * no transaction can see half of it). With `slowStart`, a pick that found
 * only ramping replicas is made again taking them in full.
 * @internal
 */
export const unsafeAcquire = (
  strategy: Strategy,
  topology: Topology.Topology,
  requirement: Requirement,
  random: number,
  slowStart: boolean
): Topology.Replica | undefined => {
  const replicas = peek(topology.replicas)
  const cursor = peek(topology.cursor)
  let position = strategy.choose(replicas, cursor, requirement, random, current)
  if (position === -1 && slowStart) {
    position = strategy.choose(replicas, cursor, ignoringRamp(requirement), random, current)
  }
  if (position === -1) return undefined
  const chosen = replicas[position]!
  if (strategy.movesCursor) unsafeSet(topology.cursor, position + 1)
  unsafeSet(chosen.inFlight, peek(chosen.inFlight) + 1)
  return chosen
}

/** Gives back a read's in-flight count, outside a transaction (a driver callback, where no fiber runs). @internal */
export const unsafeRelease = (replica: Topology.Replica): void => unsafeSet(replica.inFlight, peek(replica.inFlight) - 1)

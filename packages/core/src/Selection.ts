/**
 * The replica selection strategies, as pure choices: given the replicas as
 * a reader sees them (their health, last probe and reads in flight), the
 * round-robin cursor, what the read requires and a random draw, the position
 * of the replica to read from, or undefined for none. Where the replicas'
 * state lives (STM references, plain objects) and how the cursor and the
 * in-flight counts are written back is each line's business.
 *
 * A new strategy is one entry in `strategies` and its name in `names`.
 *
 * @since 0.1.0
 */
import type { Probe, Ramp, Standing } from "./Health.js"
import { inRotation } from "./Health.js"

/**
 * Every strategy's name, in one tuple: the `Name` type and a configuration's
 * literal are built from it.
 *
 * @since 0.1.0
 * @category models
 */
export const names = ["round-robin", "random", "least-connections", "least-lag"] as const

/**
 * A strategy's name.
 *
 * @since 0.1.0
 * @category models
 */
export type Name = typeof names[number]

/**
 * What a read needs from a replica beyond health. `undefined` fields impose
 * nothing; a bound that a replica's last probe cannot vouch for excludes it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Requirement {
  readonly maxLagMillis: number | undefined
  readonly maxLagBytes: number | undefined
  /** The replica must have replayed at least this WAL position (read-your-writes). */
  readonly minLsn: bigint | undefined
  /** True: a replica within its slow start counts as fully in rotation (no other replica fits). */
  readonly ignoreRamp?: boolean | undefined
}

/**
 * No requirement beyond health.
 *
 * @since 0.1.0
 * @category constructors
 */
export const anyHealthy: Requirement = { maxLagMillis: undefined, maxLagBytes: undefined, minLsn: undefined }

const anyHealthyIgnoringRamp: Requirement = { ...anyHealthy, ignoreRamp: true }

/**
 * The same requirement, with replicas within their slow start taken in full:
 * the second try when the ramp left no replica.
 *
 * @since 0.1.0
 * @category constructors
 */
export const ignoringRamp = (requirement: Requirement): Requirement =>
  requirement === anyHealthy ? anyHealthyIgnoringRamp : { ...requirement, ignoreRamp: true }

/**
 * How a choice reads each replica `R` (by the replica, or by its position):
 * a line implements it over its state, so that a choice on the read path
 * copies nothing. `rampAdmits` decides a replica within its slow start (the
 * line owns the clock and the draws).
 *
 * @since 0.1.0
 * @category models
 */
export interface View<R> {
  readonly health: (replica: R, index: number) => Standing
  readonly probe: (replica: R, index: number) => Probe | undefined
  readonly inFlight: (replica: R, index: number) => number
  readonly rampAdmits: (ramp: Ramp) => boolean
}

/**
 * One replica as plain data: a snapshot taken of a line's state.
 *
 * @since 0.1.0
 * @category models
 */
export interface Seen {
  readonly health: Standing
  readonly probe: Probe | undefined
  readonly inFlight: number
}

/**
 * The view of a snapshot of plain data, with the ramp decided by `rampAdmits`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const viewOfSeen = (rampAdmits: (ramp: Ramp) => boolean): View<Seen> => ({
  health: (seen) => seen.health,
  probe: (seen) => seen.probe,
  inFlight: (seen) => seen.inFlight,
  rampAdmits
})

const withinBounds = (probe: Probe | undefined, requirement: Requirement): boolean => {
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
 * In rotation, admitted by its ramp (unless the requirement ignores ramps),
 * and, when the requirement bounds lag or position, within them by the
 * replica's last probe.
 *
 * @since 0.1.0
 * @category verdicts
 */
export const isEligible = <R>(view: View<R>, replica: R, index: number, requirement: Requirement): boolean => {
  const health = view.health(replica, index)
  if (!inRotation(health)) return false
  if (health.ramp !== undefined && requirement.ignoreRamp !== true && !view.rampAdmits(health.ramp)) return false
  return requirement === anyHealthy || requirement === anyHealthyIgnoringRamp ||
    withinBounds(view.probe(replica, index), requirement)
}

/**
 * One way to choose a replica: the position of the chosen one (undefined:
 * none fits), whether the choice moves the round-robin cursor past it, and
 * whether it reads its `random` argument (a number in [0, 1)).
 *
 * @since 0.1.0
 * @category models
 */
export interface Strategy {
  readonly usesRandom: boolean
  /** Whether a choice moves the cursor to the position after it. */
  readonly movesCursor: boolean
  readonly choose: <R>(
    replicas: ReadonlyArray<R>,
    cursor: number,
    requirement: Requirement,
    random: number,
    view: View<R>
  ) => number | undefined
}

const roundRobin: Strategy["choose"] = (replicas, cursor, requirement, _random, view) => {
  const n = replicas.length
  for (let i = 0; i < n; i++) {
    const position = (cursor + i) % n
    if (isEligible(view, replicas[position]!, position, requirement)) return position
  }
  return undefined
}

const random: Strategy["choose"] = (replicas, _cursor, requirement, draw, view) => {
  const eligible: Array<number> = []
  for (let i = 0; i < replicas.length; i++) {
    if (isEligible(view, replicas[i]!, i, requirement)) eligible.push(i)
  }
  return eligible.length === 0 ? undefined : eligible[Math.min(eligible.length - 1, Math.floor(draw * eligible.length))]
}

/** The eligible replica with the least of `measure`; ties go to the first after the cursor. */
const least = (measure: <R>(view: View<R>, replica: R, index: number) => number): Strategy["choose"] =>
(replicas, cursor, requirement, _random, view) => {
  const n = replicas.length
  let best: number | undefined
  let bestValue = Infinity
  for (let i = 0; i < n; i++) {
    const position = (cursor + i) % n
    const replica = replicas[position]!
    if (!isEligible(view, replica, position, requirement)) continue
    const value = measure(view, replica, position)
    if (best === undefined || value < bestValue) {
      best = position
      bestValue = value
    }
  }
  return best
}

/**
 * Every strategy, by name.
 *
 * @since 0.1.0
 * @category strategies
 */
export const strategies: { readonly [K in Name]: Strategy } = {
  "round-robin": { usesRandom: false, movesCursor: true, choose: roundRobin },
  "random": { usesRandom: true, movesCursor: false, choose: random },
  "least-connections": {
    usesRandom: false,
    movesCursor: true,
    choose: least((view, replica, index) => view.inFlight(replica, index))
  },
  "least-lag": {
    usesRandom: false,
    movesCursor: true,
    // A replica never probed counts as furthest behind.
    choose: least((view, replica, index) => view.probe(replica, index)?.lagBytes ?? Number.MAX_SAFE_INTEGER)
  }
}

/**
 * The draw after `previous` in a golden-ratio sequence in [0, 1): the slow
 * start's admitted share follows its ramp closely with no random source.
 *
 * @since 0.1.0
 * @category constructors
 */
export const nextRampDraw = (previous: number): number => (previous + 0.6180339887498949) % 1

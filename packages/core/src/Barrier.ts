/**
 * The DDL barrier's rule. After a schema change the router routed, reads go
 * only to replicas that replayed the primary's position after it (or to the
 * primary), until every healthy replica has; writes soon after the change
 * move it along. Where the barrier is kept, and how replicas are asked for
 * their positions, is each line's business.
 *
 * @since 0.1.0
 */
import type { Requirement } from "./Selection.js"

/**
 * How long the barrier may stay up for a replica that never catches up;
 * then the safety net alone.
 *
 * @since 0.1.0
 * @category constants
 */
export const maxMillis = 30_000

/**
 * While the barrier is up, at most one read per interval asks the replicas
 * for their positions.
 *
 * @since 0.1.0
 * @category constants
 */
export const refreshMillis = 2

/**
 * The later of two positions (undefined: none).
 *
 * @since 0.1.0
 * @category combinators
 */
export const maxLsn = (a: bigint | undefined, b: bigint | undefined): bigint | undefined =>
  a === undefined ? b : b === undefined ? a : a > b ? a : b

/**
 * A read's requirement while the barrier stands at `barrier`: at or past it
 * too.
 *
 * @since 0.1.0
 * @category combinators
 */
export const requirementUnder = (requirement: Requirement, barrier: bigint | undefined): Requirement =>
  barrier === undefined ? requirement : { ...requirement, minLsn: maxLsn(requirement.minLsn, barrier) }

/**
 * Whether a write committed `sinceRaisedMillis` after the schema change
 * moves the barrier: only within the window (`consistency.afterSchemaChange`);
 * under a steady write load it must not chase the primary.
 *
 * @since 0.1.0
 * @category verdicts
 */
export const extendedBy = (sinceRaisedMillis: number, windowMillis: number): boolean => sinceRaisedMillis < windowMillis

/**
 * Whether a read now should ask the replicas where they are: the last time
 * was at least `refreshMillis` ago.
 *
 * @since 0.1.0
 * @category verdicts
 */
export const refreshDue = (now: number, refreshedAt: number): boolean => now - refreshedAt >= refreshMillis

/**
 * Whether the barrier comes down: every healthy replica's replay position
 * (`undefined`: unknown) is at or past it, or it has been up `maxMillis`.
 *
 * @since 0.1.0
 * @category verdicts
 */
export const lowers = (barrier: bigint, upForMillis: number, replays: Iterable<bigint | undefined>): boolean => {
  if (upForMillis >= maxMillis) return true
  for (const replay of replays) {
    if (replay === undefined || replay < barrier) return false
  }
  return true
}

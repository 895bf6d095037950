/**
 * A causal session's rules: what it remembers after a commit, when its
 * reads stay on the primary, and what it requires of a replica. Where the
 * session lives (a fiber's context, a token) is each line's business.
 *
 * @since 0.1.0
 */
import { maxLsn } from "./Barrier.js"
import type { Requirement } from "./Selection.js"

/**
 * What a session knows: the position its reads must see, and when it last wrote.
 *
 * @since 0.1.0
 * @category models
 */
export interface SessionState {
  readonly lsn: bigint | undefined
  /** Epoch milliseconds of the session's last commit. */
  readonly lastWriteAt: number | undefined
}

/**
 * A session that has not written: no position, no write.
 *
 * @since 0.1.0
 * @category constructors
 */
export const emptyState: SessionState = { lsn: undefined, lastWriteAt: undefined }

/**
 * The session after a commit at `now` whose position is `lsn` (undefined:
 * not captured): the position never moves back.
 *
 * @since 0.1.0
 * @category combinators
 */
export const afterCommit = (state: SessionState, lsn: bigint | undefined, now: number): SessionState => ({
  lsn: maxLsn(state.lsn, lsn),
  lastWriteAt: now
})

/**
 * Whether a session's read at `now` stays on the primary: it wrote less than
 * `stickyMillis` ago (`stickyPrimaryAfterWrite`).
 *
 * @since 0.1.0
 * @category verdicts
 */
export const sticksToPrimary = (lastWriteAt: number, now: number, stickyMillis: number): boolean =>
  now - lastWriteAt < stickyMillis

/**
 * What a read in a session (its position) or under a staleness bound
 * (`stalenessMillis`) needs of a replica, on top of the configuration's
 * requirement `base`: the tighter time bound, the session's position.
 *
 * @since 0.1.0
 * @category verdicts
 */
export const requirement = (
  base: Requirement,
  state: SessionState,
  stalenessMillis: number | undefined
): Requirement => ({
  maxLagMillis: base.maxLagMillis === undefined
    ? stalenessMillis
    : stalenessMillis === undefined
    ? base.maxLagMillis
    : Math.min(base.maxLagMillis, stalenessMillis),
  maxLagBytes: base.maxLagBytes,
  minLsn: state.lsn
})

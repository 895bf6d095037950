/**
 * A replica's health as data, and the verdicts over it: whether a standby
 * follows the primary (admission), how a probe moves it (hysteresis), and its
 * slow start. Where the facts come from (a probe's statement, the router's
 * view of the primary, a clock) is each line's business: it gathers them and
 * hands them to these functions.
 *
 * @since 0.1.0
 */
import type { StandbyState } from "./Catalog.js"
import { formatLsn } from "./Lsn.js"

/**
 * What the last probe saw of a replica, as one of a few named states.
 *
 * @since 0.1.0
 * @category models
 */
export type ReplicaState =
  /** Streams from the current primary on its timeline, not ahead of it. */
  | { readonly _tag: "Following"; readonly verified: boolean }
  /** Answers in recovery, but its WAL receiver does not stream from the primary. */
  | { readonly _tag: "Detached"; readonly reason: string }
  /** On another timeline, ahead of the primary, or following another node: its data may include lost writes. */
  | { readonly _tag: "Diverged"; readonly reason: string }
  /** The primary does not answer: following cannot be checked. */
  | { readonly _tag: "Stranded" }
  /** Accepts writes: not a standby. */
  | { readonly _tag: "Writable" }
  /** Every pooled connection is busy and completing statements: alive, nothing new learnt. */
  | { readonly _tag: "Busy" }
  /** The probe failed or timed out. */
  | { readonly _tag: "Unreachable"; readonly error: string }

/**
 * What the last health probe of a replica saw. Lag is measured against the
 * primary: bytes of WAL not yet replayed, and time since the primary's newest
 * commit that the replica has not replayed (0 when it has replayed everything).
 *
 * @since 0.1.0
 * @category models
 */
export interface Probe {
  /** When the probe finished, in epoch milliseconds. */
  readonly at: number
  readonly ok: boolean
  readonly replayLsn: bigint | undefined
  readonly lagBytes: number | undefined
  readonly lagMillis: number | undefined
  readonly error: string | undefined
  /** The replica's state as this probe saw it; a probe without one counts by `ok`. */
  readonly state?: ReplicaState | undefined
}

/**
 * A probe's verdict before it is stamped with the time it finished.
 *
 * @since 0.1.0
 * @category models
 */
export type Judged = Omit<Probe, "at">

/**
 * The primary as its last probe saw it: what a replica must follow. `N` is
 * a line's node (compared by identity, named by its `id`).
 *
 * @since 0.1.0
 * @category models
 */
export interface PrimaryView<N> {
  readonly node: N
  /** The last probe of this node found it writable. */
  readonly ok: boolean
  readonly lsn: bigint | undefined
  readonly timeline: number | undefined
}

/**
 * A node as a verdict names it.
 *
 * @since 0.1.0
 * @category models
 */
export interface Named {
  readonly id: string
}

/**
 * What a verdict on a standby needs: its own state, the primary's view, the
 * node its WAL sender address names (if the router knows one there), and,
 * once asked, the primary's position now.
 *
 * @since 0.1.0
 * @category models
 */
export interface Facts<N> {
  readonly standby: StandbyState
  /** Undefined when the current primary has not been probed yet. */
  readonly view: PrimaryView<N> | undefined
  /** The node the router knows at `standby.receiver.sender`, if any. */
  readonly sender: N | undefined
  /** The primary's position now: absent until asked (`lsn` undefined: it did not answer). */
  readonly primaryNow?: { readonly lsn: bigint | undefined } | undefined
}

/**
 * A verdict, or the one fact it still needs: the primary's position now
 * (asked at most once, and only when a verdict depends on it; then judge
 * again with `primaryNow`).
 *
 * @since 0.1.0
 * @category models
 */
export type Judgement =
  | { readonly _tag: "Judged"; readonly probe: Judged }
  | { readonly _tag: "AskPrimary" }

const askPrimary: Judgement = { _tag: "AskPrimary" }

const notStandby = "the server is not a standby (not in recovery)"

const judged = (state: ReplicaState, standby: StandbyState, primaryLsn: bigint | undefined): Judgement => {
  const replayLsn = standby.replayLsn
  const lagBytes = replayLsn === undefined || primaryLsn === undefined
    ? undefined
    : primaryLsn > replayLsn
    ? Number(primaryLsn - replayLsn)
    : 0
  const lagMillis = lagBytes === 0 ? 0 : lagBytes === undefined ? undefined : Math.max(0, standby.behindMillis ?? 0)
  const ok = state._tag === "Following" || state._tag === "Stranded"
  return {
    _tag: "Judged",
    probe: {
      ok,
      replayLsn,
      lagBytes,
      lagMillis,
      error: ok ? undefined : "reason" in state ? state.reason : state._tag === "Writable" ? notStandby : undefined,
      state
    }
  }
}

/**
 * Judges a standby against the primary: the rule that admits a replica.
 * Lag is measured against the primary's position (now, if it was asked; else
 * at its last probe); a replica that has replayed everything has no lag,
 * however old its last replayed commit.
 *
 * @since 0.1.0
 * @category verdicts
 */
export const judge = <N extends Named>(facts: Facts<N>): Judgement => {
  const { primaryNow, standby, view } = facts
  if (!standby.standby) return judged({ _tag: "Writable" }, standby, undefined)
  // Without a primary that answers, following cannot be judged: a replica
  // that streams from a newly promoted node would look diverged.
  if (view === undefined || !view.ok) return judged({ _tag: "Stranded" }, standby, view?.lsn)
  const state = follows(facts, view)
  if (state === undefined) return askPrimary
  // The view is one probe old: a replica turned away (its receiver stopped
  // because the primary just died) is only stranded if the primary does not answer now.
  if (state._tag === "Detached" || state._tag === "Diverged") {
    if (primaryNow === undefined) return askPrimary
    if (primaryNow.lsn === undefined) return judged({ _tag: "Stranded" }, standby, view.lsn)
  }
  return judged(state, standby, primaryNow?.lsn ?? view.lsn)
}

/** Whether the standby follows the primary of `view`; undefined: it depends on the primary's position now. */
const follows = <N extends Named>(facts: Facts<N>, view: PrimaryView<N>): ReplicaState | undefined => {
  const { primaryNow, sender, standby } = facts
  const receiver = standby.receiver
  if (view.timeline !== undefined && receiver?.timeline !== undefined && receiver.timeline !== view.timeline) {
    return diverged(`it is on timeline ${receiver.timeline}, the primary on ${view.timeline}`)
  }
  if (sender !== undefined && sender !== view.node) {
    return diverged(`it follows ${sender.id}, not the primary ${view.node.id}`)
  }
  if (standby.replayLsn !== undefined && view.lsn !== undefined && standby.replayLsn > view.lsn) {
    // The last known position may just be old: ask again before judging.
    if (primaryNow === undefined) return undefined
    if (primaryNow.lsn !== undefined && standby.replayLsn > primaryNow.lsn) {
      return diverged(`it replayed up to ${formatLsn(standby.replayLsn)}, beyond the primary's ${formatLsn(primaryNow.lsn)}`)
    }
  }
  if (receiver !== undefined && !receiver.visible) return { _tag: "Following", verified: false }
  if (receiver === undefined || receiver.status !== "streaming") {
    const reason = receiver === undefined
      ? "no WAL receiver runs: it does not stream from the primary"
      : `its WAL receiver is ${receiver.status ?? "not streaming"}`
    return { _tag: "Detached", reason }
  }
  if (view.timeline === undefined || receiver.timeline === undefined) {
    return { _tag: "Detached", reason: "the timelines are not known yet" }
  }
  return { _tag: "Following", verified: true }
}

const diverged = (reason: string): ReplicaState => ({ _tag: "Diverged", reason })


/**
 * How a probe moves a replica: toward rotation, away from it, out at once
 * (diverged), or not at all (a probe that learnt nothing: `Stranded`, `Busy`).
 *
 * @since 0.1.0
 * @category models
 */
export type ProbeEffect = "success" | "failure" | "evict" | "hold"

/**
 * How a probe moves a replica; a probe without a state counts by `ok`.
 *
 * @since 0.1.0
 * @category verdicts
 */
export const effectOf = (probe: Pick<Probe, "ok" | "state">): ProbeEffect => {
  switch (probe.state?._tag) {
    case undefined:
      return probe.ok ? "success" : "failure"
    case "Following":
      return "success"
    case "Diverged":
      return "evict"
    case "Stranded":
    case "Busy":
      return "hold"
    case "Detached":
    case "Writable":
    case "Unreachable":
      return "failure"
  }
}

/**
 * A replica entering (`up`) or leaving (`down`) rotation.
 *
 * @since 0.1.0
 * @category models
 */
export type Transition = "up" | "down"

/**
 * The hysteresis thresholds: out after `failureThreshold` consecutive
 * failures, back after `successThreshold` consecutive successes.
 *
 * @since 0.1.0
 * @category models
 */
export interface Hysteresis {
  readonly failureThreshold: number
  readonly successThreshold: number
}

/**
 * One probe's step of hysteresis. `streak` counts successes when positive,
 * failures when negative; only `success` and `failure` move it (call this
 * for those and `evict`: a held probe changes nothing). A diverged replica
 * (`evict`) is out at once.
 *
 * @since 0.1.0
 * @category verdicts
 */
export const step = (
  current: { readonly up: boolean; readonly streak: number },
  effect: Exclude<ProbeEffect, "hold">,
  thresholds: Hysteresis
): { readonly streak: number; readonly transition: Transition | undefined } => {
  const streak = effect === "success" ? Math.max(0, current.streak) + 1 : Math.min(0, current.streak) - 1
  const transition: Transition | undefined = current.up && (effect === "evict" || -streak >= thresholds.failureThreshold)
    ? "down"
    : !current.up && streak >= thresholds.successThreshold
    ? "up"
    : undefined
  return { streak, transition }
}

/**
 * A replica's slow start: from its return to rotation (`from`, epoch
 * milliseconds) its share of reads grows linearly to the full share over
 * `millis`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Ramp {
  readonly from: number
  readonly millis: number
}

/**
 * Whether a read may go to a replica within its ramp: `draw` is a number in
 * [0, 1), and the read is admitted when it is below the elapsed fraction of
 * the ramp (so a replica is skipped with probability 1 - elapsed/millis).
 *
 * @since 0.1.0
 * @category verdicts
 */
export const rampAdmits = (ramp: Ramp, now: number, draw: number): boolean => {
  const elapsed = now - ramp.from
  return elapsed >= ramp.millis || draw < elapsed / ramp.millis
}

/**
 * Whether a ramp is over at `now`: the replica takes its full share.
 *
 * @since 0.1.0
 * @category verdicts
 */
export const rampOver = (ramp: Ramp, now: number): boolean => now - ramp.from >= ramp.millis

/**
 * The ramp of a replica coming back into rotation at `now` with a slow start
 * of `millis`: none when unset or not positive.
 *
 * @since 0.1.0
 * @category constructors
 */
export const rampFrom = (millis: number | undefined, now: number): Ramp | undefined =>
  millis === undefined || millis <= 0 ? undefined : { from: now, millis }

/**
 * A replica in rotation: its probes say it follows the primary, and no one
 * marked it down. `ramp` is set while a slow start lasts.
 *
 * @since 0.1.0
 * @category models
 */
export interface InRotation {
  readonly _tag: "InRotation"
  /** Consecutive probe successes (positive) or failures (negative), for hysteresis. */
  readonly streak: number
  /** Set when the replica returned to rotation with a slow start: its share of reads ramps up. */
  readonly ramp?: Ramp | undefined
}

/**
 * Out of rotation by its probes, or by a connection failure seen in its
 * traffic; it comes back after `successThreshold` consecutive successes.
 *
 * @since 0.1.0
 * @category models
 */
export interface OutOfRotation {
  readonly _tag: "OutOfRotation"
  readonly streak: number
}

/**
 * Held out of rotation by hand until the mark is lifted; probes go on, and
 * `up` is what they say meanwhile, but they do not lift the mark.
 *
 * @since 0.1.0
 * @category models
 */
export interface MarkedDown {
  readonly _tag: "MarkedDown"
  readonly up: boolean
  readonly streak: number
}

/**
 * Removed from the topology: late probes, failures and marks leave it alone.
 *
 * @since 0.1.0
 * @category models
 */
export interface Removed {
  readonly _tag: "Removed"
}

/**
 * A replica's health, one of a few named states held in one value, so that
 * a routing decision reads one reference per replica. Its moves are the
 * functions below: `afterProbe`, `afterFailure`, `afterStartProbe`, `mark`, and
 * `removed`.
 *
 * @since 0.1.0
 * @category models
 */
export type Standing = InRotation | OutOfRotation | MarkedDown | Removed

/**
 * The health of a replica the router starts with: in rotation or out of it,
 * no streak.
 *
 * @since 0.1.0
 * @category constructors
 */
export const initial = (up: boolean): Standing =>
  up ? { _tag: "InRotation", streak: 0 } : { _tag: "OutOfRotation", streak: 0 }

/**
 * In rotation: a member, healthy by probes, and not marked down by hand.
 *
 * @since 0.1.0
 * @category verdicts
 */
export const inRotation = (health: Standing): health is InRotation => health._tag === "InRotation"

/**
 * What the probes say of it, whatever a mark by hand says (false once removed).
 *
 * @since 0.1.0
 * @category verdicts
 */
export const probesUp = (health: Standing): boolean =>
  health._tag === "InRotation" || (health._tag === "MarkedDown" && health.up)

/**
 * Still in the topology (not removed).
 *
 * @since 0.1.0
 * @category verdicts
 */
export const isMember = (health: Standing): boolean => health._tag !== "Removed"

/**
 * Held out by hand.
 *
 * @since 0.1.0
 * @category verdicts
 */
export const isMarkedDown = (health: Standing): health is MarkedDown => health._tag === "MarkedDown"

/** In rotation, with a ramp only when there is one. */
const inRotationWith = (streak: number, ramp: Ramp | undefined): InRotation =>
  ramp === undefined ? { _tag: "InRotation", streak } : { _tag: "InRotation", streak, ramp }

/** The same mark (or none) with what probes say now. */
const withProbes = (health: Standing, up: boolean, streak: number, ramp: Ramp | undefined): Standing =>
  health._tag === "MarkedDown"
    ? { _tag: "MarkedDown", up, streak }
    : up
    ? inRotationWith(streak, ramp)
    : { _tag: "OutOfRotation", streak }

/**
 * A probe's move (`effectOf` of the probe; call it for all but `hold`):
 * hysteresis by `step`, a slow start of `slowStartMillis` from `now` when
 * the probes bring the replica back, and the ramp dropped at the first probe
 * after it ends. Undefined for a removed replica: nothing changes.
 *
 * @since 0.1.0
 * @category verdicts
 */
export const afterProbe = (
  health: Standing,
  effect: Exclude<ProbeEffect, "hold">,
  thresholds: Hysteresis,
  slowStartMillis: number | undefined,
  now: number
): { readonly health: Standing; readonly transition: Transition | undefined } | undefined => {
  if (health._tag === "Removed") return undefined
  const up = probesUp(health)
  const { streak, transition } = step({ up, streak: health.streak }, effect, thresholds)
  const ramp = transition === "up"
    ? rampFrom(slowStartMillis, now)
    : health._tag === "InRotation" && health.ramp !== undefined && !rampOver(health.ramp, now)
    ? health.ramp
    : undefined
  return { health: withProbes(health, transition === undefined ? up : transition === "up", streak, ramp), transition }
}

/**
 * A connection failure seen in the replica's traffic: out of rotation at
 * once, its streak reset (a mark by hand stays). `wasUp` is what the probes
 * said before.
 *
 * @since 0.1.0
 * @category verdicts
 */
export const afterFailure = (health: Standing): { readonly wasUp: boolean; readonly health: Standing } =>
  health._tag === "Removed"
    ? { wasUp: false, health }
    : { wasUp: probesUp(health), health: withProbes(health, false, 0, undefined) }

/**
 * The first probe at start: in rotation when it follows the primary (a
 * streak of one success), out of it otherwise.
 *
 * @since 0.1.0
 * @category verdicts
 */
export const afterStartProbe = (health: Standing, following: boolean): Standing =>
  health._tag === "Removed"
    ? health
    : withProbes(health, following, following ? 1 : 0, health._tag === "InRotation" ? health.ramp : undefined)

/**
 * A mark by hand. Down holds the replica out, keeping what its probes say;
 * lifting it puts the replica in rotation at its word, with a slow start of
 * `slowStartMillis` from `now` unless it was in rotation already (a probe
 * may disagree later). A removed replica stays removed.
 *
 * @since 0.1.0
 * @category verdicts
 */
export const mark = (health: Standing, down: boolean, slowStartMillis: number | undefined, now: number): Standing => {
  if (health._tag === "Removed") return health
  if (down) return { _tag: "MarkedDown", up: probesUp(health), streak: health.streak }
  return inRotationWith(0, health._tag === "InRotation" ? health.ramp : rampFrom(slowStartMillis, now))
}

/**
 * The health of a replica removed from the topology.
 *
 * @since 0.1.0
 * @category constructors
 */
export const removed: Standing = { _tag: "Removed" }

/**
 * The slow start a replica is in, if any.
 *
 * @since 0.1.0
 * @category verdicts
 */
export const rampOf = (health: Standing): Ramp | undefined => health._tag === "InRotation" ? health.ramp : undefined

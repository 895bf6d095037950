/**
 * How often a node is watched, and whether a look needs a statement of its
 * own. Health comes from traffic first: a replica the primary reports as
 * streaming, with a recent reply, needs no probe; a node whose statements
 * fail, or hang while none completes, is probed at once; a calm node is
 * looked at less and less often, up to a ceiling. Each line keeps the
 * counters, the clock and the schedule, and asks these functions what to do.
 *
 * @since 0.1.0
 */
import type { StandbyReport } from "./Catalog.js"
import type { Judged } from "./Health.js"

/**
 * The probe schedule, in milliseconds: `base` after anything unusual, doubled
 * after each calm look up to `max` (equal to `base`: a fixed interval).
 *
 * @since 0.1.0
 * @category models
 */
export interface Cadence {
  readonly base: number
  readonly max: number
}

/**
 * The delay before the next look: doubled after a calm one (up to
 * `cadence.max`), back to `cadence.base` after anything else.
 *
 * @since 0.1.0
 * @category cadence
 */
export const nextDelay = (cadence: Cadence, delay: number, calm: boolean): number =>
  calm ? Math.min(cadence.max, Math.max(cadence.base, delay * 2)) : cadence.base

/**
 * What a node's pool saw since the previous look: statements completed and
 * connection failures (both counted since then), and statements running now.
 *
 * @since 0.1.0
 * @category models
 */
export interface Traffic {
  readonly completed: number
  readonly failed: number
  readonly inFlight: number
  /**
   * Of those in flight, how many wait for a connection (queued in the pool,
   * or behind a connection being opened); absent: none. Acquiring a
   * connection is no stall: a cold pool under a burst looks like this.
   */
  readonly waiting?: number | undefined
}

/**
 * No traffic.
 *
 * @since 0.1.0
 * @category constructors
 */
export const quiet: Traffic = { completed: 0, failed: 0, inFlight: 0 }

/**
 * Whether traffic gives reason to doubt a node: a connection failed, or
 * statements run on a connection while none completed since the previous
 * look (a frozen server looks like this from inside its pool). Statements
 * that only wait for a connection are not enough: a pool opening connections
 * for a burst looks like that, and a probe then would open one more; a
 * server that cannot be reached fails those connections (counted in
 * `failed`) within the connect timeout.
 *
 * @since 0.1.0
 * @category verdicts
 */
export const suspicious = (traffic: Traffic): boolean =>
  traffic.failed > 0 || (traffic.inFlight - Math.min(traffic.inFlight, traffic.waiting ?? 0) > 0 && traffic.completed === 0)

/**
 * The primary's latest report of its standbys, and when it was taken.
 *
 * @since 0.1.0
 * @category models
 */
export interface Report {
  /** When the report was taken (the line's clock, milliseconds). */
  readonly at: number
  /** The primary's WAL position in the same statement. */
  readonly primaryLsn: bigint | undefined
  readonly standbys: ReadonlyArray<StandbyReport>
}

/**
 * The standby's row of a report: the one row named `name`; undefined when
 * none is, or when several are (the name does not tell them apart).
 *
 * @since 0.1.0
 * @category verdicts
 */
export const rowOf = (report: Report, name: string): StandbyReport | undefined => {
  let found: StandbyReport | undefined
  for (const row of report.standbys) {
    if (row.name !== name) continue
    if (found !== undefined) return undefined
    found = row
  }
  return found
}

/**
 * A probe's verdict taken from the primary's report instead of a statement
 * to the standby: a WAL sender streams to it from this primary, so it
 * follows it (a standby on another timeline, or ahead of the primary, cannot
 * stream from it). Lag is the primary's position less the replay position,
 * both read in one statement; its age is PostgreSQL's `replay_lag` (0 once
 * everything is replayed).
 *
 * @since 0.1.0
 * @category verdicts
 */
export const fromReport = (row: StandbyReport, primaryLsn: bigint | undefined): Judged => {
  const replayLsn = row.replayLsn
  const lagBytes = replayLsn === undefined || primaryLsn === undefined
    ? undefined
    : primaryLsn > replayLsn
    ? Number(primaryLsn - replayLsn)
    : 0
  const lagMillis = lagBytes === 0 ? 0 : row.replayLagMillis ?? (lagBytes === undefined ? undefined : 0)
  return {
    ok: true,
    replayLsn,
    lagBytes,
    lagMillis,
    error: undefined,
    state: { _tag: "Following", verified: true }
  }
}

/**
 * What a replica's watcher knows at one of its ticks.
 *
 * @since 0.1.0
 * @category models
 */
export interface ReplicaSignals {
  readonly now: number
  /** When its health was last refreshed (a probe or a report); undefined: never. */
  readonly lastCheckAt: number | undefined
  /** The current delay between looks (see `nextDelay`). */
  readonly delay: number
  /** Its pool's traffic since the previous tick. */
  readonly traffic: Traffic
  /** In rotation by its probes (marks by hand aside). */
  readonly up: boolean
  /** How the primary names it (from its last probe: `Catalog.walName`); undefined: not known. */
  readonly walName: string | undefined
  /** The primary's latest report; undefined: none yet, or the primary did not answer. */
  readonly report: Report | undefined
  /**
   * A report row whose last reply is older than this is no proof of life (a
   * frozen standby keeps its row until `wal_sender_timeout`). Standbys reply
   * every `wal_receiver_status_interval` (10 s by default), and at once on new WAL.
   */
  readonly replyStaleAfter: number
}

/**
 * Why a replica is probed.
 *
 * @since 0.1.0
 * @category models
 */
export type ProbeReason =
  /** Never looked at. */
  | "first"
  /** Its traffic failed or hangs, or the primary's report lost it or shows it stale or not streaming. */
  | "suspect"
  /** Out of rotation: probed every base interval so that it can come back. */
  | "out"
  /** Its delay is up and no report vouches for it. */
  | "due"

/**
 * A replica watcher's next step: probe it with a statement of its own,
 * record the verdict the primary's report gives, or wait.
 *
 * @since 0.1.0
 * @category models
 */
export type ReplicaPlan =
  | { readonly _tag: "Probe"; readonly reason: ProbeReason }
  | { readonly _tag: "Report"; readonly probe: Judged; readonly at: number }
  | { readonly _tag: "Wait" }

const wait: ReplicaPlan = { _tag: "Wait" }
const probe = (reason: ProbeReason): ReplicaPlan => ({ _tag: "Probe", reason })

/**
 * A replica watcher's next step. In order: never looked at, or traffic that
 * fails or hangs: probe. Out of rotation: probe every base tick. The
 * primary's latest report names it streaming with a fresh reply: take its
 * verdict if it is newer than the last look, else wait for the next report
 * (the line drops the report when the primary stops answering); the report
 * names it otherwise (not streaming, stale), or a newer one no longer names
 * it: probe. Else (no report, its name unknown or shared, its row not
 * visible): probe once its delay is up.
 *
 * @since 0.1.0
 * @category verdicts
 */
export const planReplica = (signals: ReplicaSignals): ReplicaPlan => {
  const { lastCheckAt, report, walName } = signals
  if (lastCheckAt === undefined) return probe("first")
  if (suspicious(signals.traffic)) return probe("suspect")
  if (!signals.up) return probe("out")
  const row = report !== undefined && walName !== undefined ? rowOf(report, walName) : undefined
  // A row without a state is not visible to the router's role (no pg_read_all_stats): it proves nothing.
  if (report !== undefined && row !== undefined && row.state !== undefined) {
    const alive = row.state === "streaming" && row.replyAgeMillis !== undefined &&
      row.replyAgeMillis <= signals.replyStaleAfter
    if (!alive) return probe("suspect")
    // Already taken: the primary's next report refreshes it.
    return report.at > lastCheckAt ? { _tag: "Report", probe: fromReport(row, report.primaryLsn), at: report.at } : wait
  }
  // Gone from the report (its WAL sender ended): a killed standby looks like this.
  if (report !== undefined && walName !== undefined && report.at > lastCheckAt && !report.standbys.some((other) => other.name === walName)) {
    return probe("suspect")
  }
  return signals.now - lastCheckAt >= signals.delay ? probe("due") : wait
}

/**
 * Whether a look found nothing new: the basis of the next delay. A probe or
 * report that kept a replica following, in rotation, with no transition.
 *
 * @since 0.1.0
 * @category verdicts
 */
export const calm = (judged: Pick<Judged, "state"> | undefined, transition: "up" | "down" | undefined): boolean =>
  transition === undefined && judged?.state?._tag === "Following"

/**
 * What a probe that failed to get its answer saw around it.
 *
 * @since 0.1.0
 * @category models
 */
export interface ProbeFailure {
  /**
   * It ran out of time: its own timeout, or a connect timeout on its way
   * (the pool's, when its checkout had to open a connection; the driver's
   * backstop on a connection of its own). Any other failure (a refused or
   * reset connection, a shutdown, an error, a `PoolBusy`) is not a time-out.
   */
  readonly timedOut: boolean
  /** The node's server sent something on its other connections (answers, logins) while the probe waited. */
  readonly sentElsewhere: boolean
  /** The server answered the login of the probe's own connection… */
  readonly loginAnswered: boolean
  /** …and the probe's connection was opened. */
  readonly connected: boolean
}

/**
 * Why a failed probe says nothing against its node (the line's `PoolBusy`),
 * or `undefined` when it counts. A frozen server sends nothing; a server on
 * a crowded host answers its sessions, or the probe's login, but is slow to
 * start a backend for it: a time-out then, whichever bound gave out, is the
 * host's crowding, not the node's failure.
 *
 * @since 0.1.0
 * @category verdicts
 */
export const crowded = (failure: ProbeFailure): string | undefined =>
  !failure.timedOut
    ? undefined
    : failure.sentElsewhere
    ? "the server answered the node's other connections while the probe waited"
    : failure.loginAnswered && !failure.connected
    ? "the server answered the probe's login but did not finish it in time"
    : undefined

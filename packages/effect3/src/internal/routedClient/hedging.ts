/** @internal */
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import type * as Topology from "../../Topology.js"
import * as NodeInternal from "../node.js"
import * as Routing from "../routing/decision.js"
import * as Waiting from "../health/waiting.js"
import type { Reads } from "./reads.js"
import * as Statement from "./statement.js"
import { annotate, count, countHedge } from "./tracing.js"

/** One attempt of a hedged read: the statement on one replica. */
interface Attempt {
  readonly replica: Topology.Replica
  running: NodeInternal.Running | undefined
  /** Its `readTimeout`. */
  timer: ReturnType<typeof setTimeout> | undefined
  /** Its answer will not settle the read: it came, or the attempt failed, timed out, was evicted or lost. */
  over: boolean
}

/** The attempt's answer will not settle the read: stop its timer, cancel it on the server. */
const giveUp = (attempt: Attempt | undefined) => {
  if (attempt === undefined || attempt.over) return
  attempt.over = true
  if (attempt.timer !== undefined) clearTimeout(attempt.timer)
  if (attempt.running !== undefined) NodeInternal.abandon(attempt.running)
}

/** Cancels an attempt still running (eviction, its timeout): false when it answered or was given up already. */
const stop = (attempt: Attempt): boolean => {
  const running = attempt.running!
  if (running.settled || running.abandoned) return false
  if (attempt.timer !== undefined) clearTimeout(attempt.timer)
  NodeInternal.abandon(running)
  return true
}

/** One hedged read: who waits, its attempts, and how it ended. */
interface Hedge {
  readonly reads: Reads
  readonly facts: Statement.Facts
  /** Who waits for the outcome now; undefined while the fiber picks the hedge's replica. */
  resume: ((effect: Effect.Effect<any, SqlError>) => void) | undefined
  /** The outcome, when the read settled while nobody waited. */
  outcome: Effect.Effect<any, SqlError> | undefined
  settled: boolean
  hedgeTimer: ReturnType<typeof setTimeout> | undefined
  first: Attempt | undefined
  second: Attempt | undefined
  /** The failure of the attempt that ended first, for passive detection when the read settles. */
  observed: { readonly replica: Topology.Replica; readonly error: unknown } | undefined
  /** The second attempt is not `watch`ed (a fiber watches one statement): this cancels it if the fiber ends. */
  onExit: (() => void) | undefined
}

/** The read's outcome, once: both attempts given up, the waiting fiber resumed (or the outcome kept for it). */
const settle = (hedge: Hedge, effect: Effect.Effect<any, SqlError>) => {
  hedge.settled = true
  if (hedge.hedgeTimer !== undefined) clearTimeout(hedge.hedgeTimer)
  if (hedge.onExit !== undefined) hedge.facts.fiber.removeObserver(hedge.onExit)
  giveUp(hedge.first)
  giveUp(hedge.second)
  const observed = hedge.observed
  const value = observed === undefined
    ? effect
    : Effect.zipRight(Routing.observeFailure(observed.replica, observed.error), effect)
  if (hedge.resume === undefined) {
    hedge.outcome = value
    return
  }
  const waiting = hedge.resume
  hedge.resume = undefined
  waiting(value)
}

/** `attempt` will not answer: the other one may still, or else `then` is the read's outcome. */
const ended = (hedge: Hedge, attempt: Attempt, error: unknown, then: () => Effect.Effect<any, SqlError>) => {
  attempt.over = true
  if (hedge.settled) return
  const other = attempt === hedge.first ? hedge.second : hedge.first
  if (other !== undefined && !other.over) {
    if (error !== undefined) hedge.observed = { replica: attempt.replica, error }
    return
  }
  settle(hedge, then())
}

/** Starts the statement on `on`: its answer, failure, `readTimeout` or eviction ends the attempt. */
const start = (hedge: Hedge, on: Topology.Replica): Attempt => {
  const { facts, reads } = hedge
  const attempt: Attempt = { replica: on, running: undefined, timer: undefined, over: false }
  const waiting = Waiting.readsWaitingOn(on)
  const evicted = () => {
    Routing.unsafeRelease(on)
    if (stop(attempt)) ended(hedge, attempt, undefined, () => reads.again(facts))
  }
  waiting.add(evicted)
  attempt.running = Statement.start(facts, on.node.pool, (error, result, acquired) => {
    if (waiting.delete(evicted)) Routing.unsafeRelease(on)
    if (attempt.timer !== undefined) clearTimeout(attempt.timer)
    // Given up already (lost, timed out, evicted, interrupted): only the count comes back.
    if (attempt.over || attempt.running?.abandoned === true) return
    if (error === undefined) {
      attempt.over = true
      // The span names the node that answered.
      if (attempt === hedge.second) annotate(facts.span, on.node)
      return settle(hedge, Statement.finish(facts, result!))
    }
    ended(hedge, attempt, error, () => reads.afterFailureOn(facts, on, error, acquired))
  })
  if (reads.readTimeout !== undefined && !attempt.over) {
    attempt.timer = setTimeout(() => {
      attempt.timer = undefined
      if (!stop(attempt)) return
      const error = reads.timedOut()
      ended(hedge, attempt, error, () => reads.afterTimeoutOn(facts, on, error))
    }, reads.readTimeout)
  }
  return attempt
}

/** The hedge's replica is picked: the second attempt starts there, unless the read settled meanwhile. */
const startHedge = (hedge: Hedge, other: Option.Option<Topology.Replica>) =>
  Effect.sync(() => {
    if (other._tag === "None") return
    // Answered (or given up) while the replica was picked: the pick is not used.
    if (hedge.settled) return Routing.unsafeRelease(other.value)
    count(other.value.node, "read")
    countHedge(other.value.node)
    hedge.onExit = () => {
      hedge.settled = true
      giveUp(hedge.second)
    }
    hedge.facts.fiber.addObserver(hedge.onExit)
    hedge.second = start(hedge, other.value)
  })

/** After `hedgeAfter` without an answer: pick another replica, start there, and wait for either attempt. */
const hedgeNow = (hedge: Hedge, replica: Topology.Replica) => {
  hedge.hedgeTimer = undefined
  const first = hedge.first!
  if (hedge.settled || first.over || first.running!.abandoned || hedge.resume === undefined) return
  const waiting = hedge.resume
  hedge.resume = undefined
  const waitAgain = (resumeAgain: (effect: Effect.Effect<any, SqlError>) => void) => {
    if (hedge.outcome !== undefined) return resumeAgain(hedge.outcome)
    hedge.resume = resumeAgain
  }
  // Picking and starting are one step: no interruption between the count and the statement.
  waiting(Effect.zipRight(
    Effect.uninterruptible(
      Effect.flatMap(Routing.pickHedge(hedge.reads.state, hedge.facts.fiber, replica), (other) => startHedge(hedge, other))
    ),
    Effect.async<any, SqlError>(waitAgain)
  ))
}

/**
 * A read on a replica with `hedgeAfter` on: `readOnReplica`'s read, and when
 * the replica has not answered within `hedgeAfter`, the same statement on
 * another replica too. The first answer wins and the other attempt is
 * cancelled on the server; an attempt that fails, times out or is evicted
 * while the other still runs leaves the read to the other; when neither
 * answers, the safety net takes the last failure. Every outcome goes through
 * `settle`, once. Each attempt holds one in-flight count, given back as
 * `readOnReplica` gives it back: when its server answers (a cancelled
 * statement answers 57014) or when its replica leaves rotation.
 *
 * No fiber is forked: the hedge timer resumes the read's fiber with the
 * hedge (pick a replica, start there), and the fiber then waits again on
 * whichever attempt answers first.
 * @internal
 */
export const hedgedRead = (
  reads: Reads,
  facts: Statement.Facts,
  replica: Topology.Replica,
  hedgeAfter: number
): Effect.Effect<any, SqlError> => {
  const hedge: Hedge = {
    reads,
    facts,
    resume: undefined,
    outcome: undefined,
    settled: false,
    hedgeTimer: undefined,
    first: undefined,
    second: undefined,
    observed: undefined,
    onExit: undefined
  }
  count(replica.node, "read")
  annotate(facts.span, replica.node)
  return Effect.async<any, SqlError>((resumeFirst) => {
    hedge.resume = resumeFirst
    hedge.first = start(hedge, replica)
    NodeInternal.watch(facts.fiber, hedge.first.running!)
    if (hedge.settled) return
    hedge.hedgeTimer = setTimeout(() => hedgeNow(hedge, replica), hedgeAfter)
  })
}

/** @internal */
import type { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import type * as Topology from "../../Topology.js"
import * as NodeInternal from "../node.js"
import * as Routing from "../routing.js"
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
  const fiber = facts.fiber
  // Who waits for the outcome now; undefined while the fiber picks the hedge's replica.
  let resume: ((effect: Effect.Effect<any, SqlError>) => void) | undefined
  // The outcome, when the read settled while nobody waited.
  let outcome: Effect.Effect<any, SqlError> | undefined
  let settled = false
  let hedgeTimer: ReturnType<typeof setTimeout> | undefined
  let first: Attempt | undefined
  let second: Attempt | undefined
  // The failure of the attempt that ended first, for passive detection when the read settles.
  let observed: { readonly replica: Topology.Replica; readonly error: unknown } | undefined
  // The second attempt is not `watch`ed (a fiber watches one statement): this cancels it if the fiber ends.
  let onExit: (() => void) | undefined

  const settle = (effect: Effect.Effect<any, SqlError>) => {
    settled = true
    if (hedgeTimer !== undefined) clearTimeout(hedgeTimer)
    if (onExit !== undefined) fiber.removeObserver(onExit)
    giveUp(first)
    giveUp(second)
    const value = observed === undefined
      ? effect
      : Effect.zipRight(Routing.observeFailure(observed.replica, observed.error), effect)
    if (resume === undefined) {
      outcome = value
      return
    }
    const waiting = resume
    resume = undefined
    waiting(value)
  }

  /** `attempt` will not answer: the other one may still, or else `then` is the read's outcome. */
  const ended = (attempt: Attempt, error: unknown, then: () => Effect.Effect<any, SqlError>) => {
    attempt.over = true
    if (settled) return
    const other = attempt === first ? second : first
    if (other !== undefined && !other.over) {
      if (error !== undefined) observed = { replica: attempt.replica, error }
      return
    }
    settle(then())
  }

  const start = (on: Topology.Replica): Attempt => {
    const attempt: Attempt = { replica: on, running: undefined, timer: undefined, over: false }
    const waiting = Waiting.readsWaitingOn(on)
    const evicted = () => {
      Routing.unsafeRelease(on)
      if (stop(attempt)) ended(attempt, undefined, () => reads.again(facts))
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
        if (attempt === second) annotate(facts.span, on.node)
        return settle(Statement.finish(facts, result!))
      }
      ended(attempt, error, () => reads.afterFailureOn(facts, on, error, acquired))
    })
    if (reads.readTimeout !== undefined && !attempt.over) {
      attempt.timer = setTimeout(() => {
        attempt.timer = undefined
        if (!stop(attempt)) return
        const error = reads.timedOut()
        ended(attempt, error, () => reads.afterTimeoutOn(facts, on, error))
      }, reads.readTimeout)
    }
    return attempt
  }

  const startHedge = (other: Option.Option<Topology.Replica>) =>
    Effect.sync(() => {
      if (other._tag === "None") return
      // Answered (or given up) while the replica was picked: the pick is not used.
      if (settled) return Routing.unsafeRelease(other.value)
      count(other.value.node, "read")
      countHedge(other.value.node)
      onExit = () => {
        settled = true
        giveUp(second)
      }
      fiber.addObserver(onExit)
      second = start(other.value)
    })

  const waitAgain = (resumeAgain: (effect: Effect.Effect<any, SqlError>) => void) => {
    if (outcome !== undefined) return resumeAgain(outcome)
    resume = resumeAgain
  }

  count(replica.node, "read")
  annotate(facts.span, replica.node)
  return Effect.async<any, SqlError>((resumeFirst) => {
    resume = resumeFirst
    first = start(replica)
    NodeInternal.watch(fiber, first.running!)
    if (settled) return
    hedgeTimer = setTimeout(() => {
      hedgeTimer = undefined
      if (settled || first!.over || first!.running!.abandoned || resume === undefined) return
      const waiting = resume
      resume = undefined
      // Picking and starting are one step: no interruption between the count and the statement.
      waiting(Effect.zipRight(
        Effect.uninterruptible(Effect.flatMap(Routing.pickHedge(reads.state, fiber, replica), startHedge)),
        Effect.async<any, SqlError>(waitAgain)
      ))
    }, hedgeAfter)
  })
}

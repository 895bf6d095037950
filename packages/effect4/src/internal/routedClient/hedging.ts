/** @internal */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import type { SqlError } from "effect/sql/SqlError"
import type * as Topology from "../../Topology.js"
import * as Routing from "../routing/decision.js"
import type { Reads, TimedOut } from "./reads.js"
import type * as Statement from "./statement.js"
import { annotate, count, countHedge } from "./tracing.js"

type Outcome = Exit.Exit<any, SqlError | TimedOut>

/**
 * A read on a replica with `hedgeAfter` on: the read on `replica`, and when
 * that replica has not answered within `hedgeAfter`, the same statement on
 * another eligible replica too. The first answer wins and the other attempt
 * is interrupted; an attempt that fails while the other still runs leaves the
 * read to the other; when neither answers, the safety net takes the last
 * failure. Each attempt holds one in-flight count, given back when it ends.
 *
 * Only reads with `hedgeAfter` set fork: the attempts run as child fibers of
 * the read's fiber, so interrupting the read interrupts both.
 * @internal
 */
export const hedgedRead = (
  reads: Reads,
  facts: Statement.Facts,
  replica: Topology.Replica,
  hedgeAfter: Duration.Duration
): Effect.Effect<any, SqlError> =>
  Effect.gen(function*() {
    count(facts.fiber, replica.node, "read")
    annotate(facts.fiber, replica.node)
    // Started at once: an attempt interrupted before its first step would
    // never give its in-flight count back.
    const first = yield* Effect.forkChild(reads.attempt(facts, replica), { startImmediately: true })
    const early = yield* Effect.timeoutOption(Fiber.await(first), hedgeAfter)
    if (Option.isSome(early)) return yield* settle(reads, facts, replica, early.value)
    // Picking and starting are one step: no interruption between the count and the statement.
    const second = yield* Effect.uninterruptible(
      Effect.flatMap(Routing.pickHedge(reads.state, facts.fiber, replica), (other) =>
        Option.isNone(other)
          ? Effect.succeed(undefined)
          : Effect.map(
            Effect.sync(() => {
              count(facts.fiber, other.value.node, "read")
              countHedge(facts.fiber, other.value.node)
            }),
            () => other.value
          ).pipe(
            Effect.flatMap((on) =>
              Effect.map(Effect.forkChild(reads.attempt(facts, on), { startImmediately: true }), (fiber) => ({ on, fiber }))
            )
          ))
    )
    if (second === undefined) return yield* settle(reads, facts, replica, yield* Fiber.await(first))
    // The first answer wins; a failure waits for the other attempt.
    const winner = yield* Effect.raceAll([
      Effect.map(Fiber.join(first), (value) => [value, replica] as const),
      Effect.map(Fiber.join(second.fiber), (value) => [value, second.on] as const)
    ]).pipe(Effect.exit)
    if (Exit.isSuccess(winner)) {
      const [value, on] = winner.value
      // The loser may have failed before the winner answered: its replica is
      // observed (passive detection) as a failure of a plain read would be.
      const [loser, loserOn] = on === replica ? [second.fiber, second.on] : [first, replica]
      const lost = loser.pollUnsafe()
      // The loser stops now; nobody waits for its statement to drain.
      if (lost === undefined) loser.interruptUnsafe()
      if (lost !== undefined && Exit.isFailure(lost)) {
        const error = Exit.findErrorOption(lost)
        if (Option.isSome(error)) yield* Routing.observeFailure(loserOn, error.value)
      }
      if (on !== replica) annotate(facts.fiber, on.node)
      return value
    }
    // Both failed: the first one's replica is observed, the safety net takes the second's failure.
    const firstExit = yield* Fiber.await(first)
    if (Exit.isFailure(firstExit)) {
      const error = Exit.findErrorOption(firstExit)
      if (Option.isSome(error)) yield* Routing.observeFailure(replica, error.value)
    }
    return yield* settle(reads, facts, second.on, yield* Fiber.await(second.fiber))
  })

/** An attempt's outcome as the read's: its value, or the safety net for its failure. */
const settle = (reads: Reads, facts: Statement.Facts, on: Topology.Replica, outcome: Outcome): Effect.Effect<any, SqlError> => {
  if (Exit.isSuccess(outcome)) return Effect.succeed(outcome.value)
  const error = Exit.findErrorOption(outcome)
  return Option.isSome(error) ? reads.afterFailureOn(facts, on, error.value) : (outcome as Exit.Exit<never, never>)
}

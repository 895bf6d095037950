/** @internal */
import type { SqlError } from "@effect/sql/SqlError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Topology from "../../Topology.js"
import * as NodeInternal from "../node.js"
import * as Routing from "../routing/decision.js"
import * as Waiting from "../health/waiting.js"
import * as Hedging from "./hedging.js"
import * as Statement from "./statement.js"
import { annotate, count } from "./tracing.js"
import type { Writes } from "./writes.js"
import type { RouterState } from "../routerState.js"

// A read goes where `Routing.decideRead` sends it, with the safety net:
// 25006, eviction, `readTimeout`, and hedging when `hedgeAfter` is set.

/**
 * What the read paths share: the settings in milliseconds, and the safety
 * net's steps, which the hedged read takes too.
 * @internal
 */
export interface Reads {
  readonly state: RouterState
  readonly readTimeout: number | undefined
  readonly timedOut: () => Error
  /** The read once more, decided now (the replica left rotation under it). */
  readonly again: (facts: Statement.Facts) => Effect.Effect<any, SqlError>
  /** The safety net for a read that failed on `replica`. */
  readonly afterFailureOn: (
    facts: Statement.Facts,
    replica: Topology.Replica,
    error: Error,
    acquired: boolean
  ) => Effect.Effect<any, SqlError>
  /** A read that `replica` did not answer within `readTimeout`. */
  readonly afterTimeoutOn: (facts: Statement.Facts, replica: Topology.Replica, error: Error) => Effect.Effect<any, SqlError>
}

/** A read on the primary: no replica fits, or the region forces the primary. */
// Severed because the primary changed under it (the old one's connections are
// cut at the switch), it runs once more where it is decided now, as a read
// given up by eviction does.
const readOnPrimary = (
  { topology }: RouterState,
  facts: Statement.Facts,
  again: (facts: Statement.Facts) => Effect.Effect<any, SqlError>
): Effect.Effect<any, SqlError> => {
  const primary = Routing.peek(topology.primary)
  count(primary, "read")
  annotate(facts.span, primary)
  const severs = NodeInternal.seversOf(primary)
  return Effect.async<any, SqlError>((resume) => {
    NodeInternal.watch(
      facts.fiber,
      Statement.start(facts, primary.pool, (error, result, acquired) =>
        resume(
          error === undefined
            ? Statement.finish(facts, result!)
            : NodeInternal.seversOf(primary) === severs
            ? Effect.fail(NodeInternal.failed(error, acquired))
            : again(facts)
        ))
    )
  })
}

/**
 * A read on a replica, with the safety net: refused as a write (25006) it
 * runs on the primary; a replica that is gone or does not answer within
 * `readTimeout` leaves rotation and the read runs once more elsewhere. The
 * in-flight count is given back when the server answers.
 */
const readOnReplica = (reads: Reads, facts: Statement.Facts, replica: Topology.Replica): Effect.Effect<any, SqlError> => {
  const { readTimeout } = reads
  count(replica.node, "read")
  annotate(facts.span, replica.node)
  return Effect.async<any, SqlError>((resume) => {
    let timer: ReturnType<typeof setTimeout> | undefined
    // The replica left rotation (Waiting.releaseWaiting took this entry out):
    // the count goes back now, and a read still waiting runs once more elsewhere.
    const evicted = () => {
      Routing.unsafeRelease(replica)
      if (running.settled || running.abandoned) return
      if (timer !== undefined) clearTimeout(timer)
      NodeInternal.abandon(running)
      resume(reads.again(facts))
    }
    Waiting.readsWaitingOn(replica).add(evicted)
    const running: NodeInternal.Running = Statement.start(facts, replica.node.pool, (error, result, acquired) => {
      if (Waiting.readsWaitingOn(replica).delete(evicted)) Routing.unsafeRelease(replica)
      if (timer !== undefined) clearTimeout(timer)
      if (running.abandoned) return
      if (error === undefined) return resume(Statement.finish(facts, result!))
      resume(reads.afterFailureOn(facts, replica, error, acquired))
    })
    NodeInternal.watch(facts.fiber, running)
    if (readTimeout !== undefined) {
      timer = setTimeout(() => {
        timer = undefined
        if (running.settled || running.abandoned) return
        NodeInternal.abandon(running)
        resume(reads.afterTimeoutOn(facts, replica, reads.timedOut()))
      }, readTimeout)
    }
  })
}

/** The statement as a read. @internal */
export const makeRead = (state: RouterState, { write }: Writes): (facts: Statement.Facts) => Effect.Effect<any, SqlError> => {
  const readTimeout = state.config.readTimeout === undefined ? undefined : Duration.toMillis(state.config.readTimeout)
  const hedgeAfter = state.config.hedgeAfter === undefined ? undefined : Duration.toMillis(state.config.hedgeAfter)

  /** A read that `replica` did not answer within `readTimeout`: once more elsewhere, or the timeout's error. */
  const afterTimeoutOn = (facts: Statement.Facts, replica: Topology.Replica, error: Error): Effect.Effect<any, SqlError> =>
    facts.retry ? elsewhere(facts, replica, error) : Effect.fail(Statement.asSqlError(error))

  /** The safety net for a read that failed on a replica: readOnReplica's and each hedged attempt's. */
  const afterFailureOn = (
    facts: Statement.Facts,
    replica: Topology.Replica,
    error: Error,
    acquired: boolean
  ): Effect.Effect<any, SqlError> => {
    switch (Routing.afterReadFailure(state, replica, error)) {
      case "primary":
        return write(facts, false)
      case "primary-read":
        return readOnPrimary(state, facts, again)
      case "elsewhere":
        return facts.retry ? elsewhere(facts, replica, error) : Effect.fail(NodeInternal.failed(error, acquired))
      case "fail":
        return Effect.fail(NodeInternal.failed(error, acquired))
    }
  }

  /** The replica left rotation under the read: the read runs on the node chosen now. */
  const again = (facts: Statement.Facts): Effect.Effect<any, SqlError> => Effect.suspend(() => read(facts))

  /** The replica is gone: out of rotation, and the read once more on another node, its last try. */
  const elsewhere = (facts: Statement.Facts, replica: Topology.Replica, error: unknown): Effect.Effect<any, SqlError> => {
    facts.retry = false
    return Effect.zipRight(Routing.observeFailure(replica, error), again(facts))
  }

  const reads: Reads = {
    state,
    readTimeout,
    timedOut: () => new Error(`router read timeout: no answer within ${Duration.format(state.config.readTimeout!)}`),
    again,
    afterFailureOn,
    afterTimeoutOn
  }

  /** The read on the replica chosen (after overflow), or on the primary. */
  const readOn = (facts: Statement.Facts, chosen: Topology.Replica | undefined) =>
    chosen === undefined
      ? readOnPrimary(state, facts, again)
      : hedgeAfter === undefined
      ? readOnReplica(reads, facts, chosen)
      : Hedging.hedgedRead(reads, facts, chosen, hedgeAfter)

  /** A read: where `Routing.decideRead` sends it, now when it can, else when its decision is made. */
  const read = (facts: Statement.Facts): Effect.Effect<any, SqlError> => {
    const decision = Routing.decideRead(state, facts.fiber)
    return decision === undefined || !Routing.isPending(decision)
      ? readOn(facts, Routing.overflowNow(state, decision))
      : Effect.flatMap(
        Effect.mapError(decision, Statement.asSqlError),
        (chosen) => readOn(facts, Option.isSome(chosen) ? Routing.overflowNow(state, chosen.value) : undefined)
      )
  }

  return read
}

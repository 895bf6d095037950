/** @internal */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type { SqlError } from "effect/sql/SqlError"
import * as Topology from "../../Topology.js"
import * as NodeInternal from "../node.js"
import type { RouterState } from "../routerState.js"
import * as Routing from "../routing/decision.js"
import * as Hedging from "./hedging.js"
import * as Statement from "./statement.js"
import { annotate, count } from "./tracing.js"
import type { Writes } from "./writes.js"

// A read goes where `Routing.decideRead` sends it, with the safety net:
// 25006, eviction, `readTimeout`, and hedging when `hedgeAfter` is set.

/**
 * What the read paths share: the settings, and the safety net's steps,
 * which the hedged read takes too.
 * @internal
 */
export interface Reads {
  readonly state: RouterState
  readonly readTimeout: Duration.Duration | undefined
  /** The read once more, decided now (the replica left rotation under it). */
  readonly again: (facts: Statement.Facts) => Effect.Effect<any, SqlError>
  /** One attempt on `replica`: the statement, bounded by `readTimeout`, its in-flight count given back on exit. */
  readonly attempt: (facts: Statement.Facts, replica: Topology.Replica) => Effect.Effect<any, SqlError | TimedOut>
  /**
   * The safety net for a read that failed (or timed out) on `replica`;
   * `severs` is the replica's sever count when the read started there, if known.
   */
  readonly afterFailureOn: (
    facts: Statement.Facts,
    replica: Topology.Replica,
    error: SqlError | TimedOut,
    severs?: number
  ) => Effect.Effect<any, SqlError>
}

/** A replica did not answer within `readTimeout`. @internal */
export class TimedOut extends Error {
  readonly _tag = "TimedOut"
}

/** The statement as a read. @internal */
export const makeRead = (state: RouterState, { write }: Writes): (facts: Statement.Facts) => Effect.Effect<any, SqlError> => {
  const { topology } = state
  const readTimeout = state.config.readTimeout
  const hedgeAfter = state.config.hedgeAfter
  const timedOut = () =>
    Effect.fail(new TimedOut(`router read timeout: no answer within ${Duration.format(readTimeout!)}`))

  /**
   * A read on the primary: no replica fits, or the region forces the
   * primary. Severed because the primary changed under it (the old one's
   * sessions are cut at the switch), it runs once more where it is decided
   * now, as a read severed by eviction does.
   */
  const readOnPrimary = (facts: Statement.Facts): Effect.Effect<any, SqlError> => {
    const primary = Routing.peek(topology.primary)
    count(facts.fiber, primary, "read")
    annotate(facts.fiber, primary)
    const severs = NodeInternal.seversOf(primary)
    return Effect.catch(
      Statement.run(facts, primary),
      (error) => NodeInternal.seversOf(primary) === severs ? Effect.fail(error) : again(facts)
    )
  }

  const attempt = (facts: Statement.Facts, replica: Topology.Replica): Effect.Effect<any, SqlError | TimedOut> => {
    const statement = Statement.run(facts, replica.node)
    const bounded = readTimeout === undefined
      ? statement
      : Effect.timeoutOrElse(statement, { duration: readTimeout, orElse: timedOut })
    return Effect.ensuring(bounded, Routing.releaseReplica(replica))
  }

  /**
   * A read on a replica, with the safety net: refused as a write (25006) it
   * runs on the primary; a replica that is gone, leaves rotation under it or
   * does not answer within `readTimeout` leaves rotation (if gone) and the
   * read runs once more elsewhere.
   */
  const readOnReplica = (facts: Statement.Facts, replica: Topology.Replica): Effect.Effect<any, SqlError> => {
    count(facts.fiber, replica.node, "read")
    annotate(facts.fiber, replica.node)
    const severs = NodeInternal.seversOf(replica.node)
    return Effect.catch(attempt(facts, replica), (error) => afterFailureOn(facts, replica, error, severs))
  }

  /** The safety net for a read that failed on a replica: readOnReplica's and each hedged attempt's. */
  const afterFailureOn = (
    facts: Statement.Facts,
    replica: Topology.Replica,
    error: SqlError | TimedOut,
    severs?: number
  ): Effect.Effect<any, SqlError> => {
    if (error instanceof TimedOut) {
      return facts.retry ? elsewhere(facts, replica, error) : Effect.fail(Statement.asSqlError(error))
    }
    switch (Routing.afterReadFailure(state, replica, error)) {
      case "primary":
        return write(facts, false)
      case "primary-read":
        return readOnPrimary(facts)
      case "elsewhere":
        // Severed because the replica left rotation (eviction): its reads run
        // elsewhere without spending their retry, as if never started there;
        // also when it is back already (its sever count moved under the read).
        if (!Topology.inRotation(Routing.peek(replica.health))) return again(facts)
        if (severs !== undefined && NodeInternal.seversOf(replica.node) !== severs) return again(facts)
        return facts.retry ? elsewhere(facts, replica, error) : Effect.fail(error)
      case "fail":
        return Effect.fail(error)
    }
  }

  /** The read runs on the node chosen now. */
  const again = (facts: Statement.Facts): Effect.Effect<any, SqlError> => Effect.suspend(() => read(facts))

  /** The replica is gone: out of rotation, and the read once more on another node, its last try. */
  const elsewhere = (facts: Statement.Facts, replica: Topology.Replica, error: unknown): Effect.Effect<any, SqlError> => {
    facts.retry = false
    return Effect.andThen(Routing.observeFailure(replica, error), again(facts))
  }

  const reads: Reads = { state, readTimeout, again, attempt, afterFailureOn }

  /** The read on the replica chosen (after overflow), or on the primary. */
  const readOn = (facts: Statement.Facts, chosen: Topology.Replica | undefined): Effect.Effect<any, SqlError> =>
    chosen === undefined
      ? readOnPrimary(facts)
      : hedgeAfter === undefined
      ? readOnReplica(facts, chosen)
      : Hedging.hedgedRead(reads, facts, chosen, hedgeAfter)

  const readOnAfterOverflow = (facts: Statement.Facts, chosen: Topology.Replica | undefined) => {
    const after = Routing.overflowNow(state, chosen)
    return after === undefined || !Effect.isEffect(after)
      ? readOn(facts, after)
      : Effect.flatMap(after, (replica) => readOn(facts, replica))
  }

  /** A read: where `Routing.decideRead` sends it, now when it can, else when its decision is made. */
  const read = (facts: Statement.Facts): Effect.Effect<any, SqlError> => {
    const decision = Routing.decideRead(state, facts.fiber)
    return decision === undefined || !Routing.isPending(decision)
      ? readOnAfterOverflow(facts, decision)
      : Effect.flatMap(
        Effect.mapError(decision, Statement.asSqlError),
        (chosen) => readOnAfterOverflow(facts, Option.getOrUndefined(chosen))
      )
  }

  return read
}

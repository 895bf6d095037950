/** @internal */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type { SqlError } from "effect/sql/SqlError"
import type * as Node from "../../Node.js"
import { WriteOutcomeUnknown } from "../../RouterError.js"
import * as Consistency from "../consistency.js"
import { isConnectionError, isReadOnlyViolation } from "../errors.js"
import * as Membership from "../health/membership.js"
import * as NodeInternal from "../node.js"
import type { RouterState } from "../routerState.js"
import * as Routing from "../routing/decision.js"
import * as Statement from "./statement.js"
import { annotate, count } from "./tracing.js"

// A write goes to the primary, never anywhere else and never twice.

/** @internal */
export interface Writes {
  /** The statement as a write on the primary; `schemaChange` raises the DDL barrier after it. */
  readonly write: (facts: Statement.Facts, schemaChange: boolean) => Effect.Effect<any, SqlError>
  /** The primary for a write, or the split brain that forbids one. */
  readonly primaryForWrite: Effect.Effect<Node.Node, SqlError>
}

/** @internal */
export const makeWrites = (
  state: RouterState,
  options: {
    readonly writeTimeout?: Duration.Input | undefined
    readonly onSchemaChange?: Effect.Effect<void> | undefined
  }
): Writes => {
  const { topology } = state
  const writeTimeout = options.writeTimeout === undefined ? undefined : Duration.fromInputUnsafe(options.writeTimeout)
  const primaryForWrite = Effect.mapError(Membership.primaryForWrite(state), Statement.asSqlError)
  const afterWrite = afterWriteOn(state, options.onSchemaChange)

  /**
   * The write on `primary`: a primary that turned read-only (failover)
   * triggers re-discovery and fails the statement. In a causal session it
   * records the position reads need.
   */
  const writeOn = (facts: Statement.Facts, primary: Node.Node, schemaChange: boolean): Effect.Effect<any, SqlError> => {
    count(facts.fiber, primary, "write")
    annotate(facts.fiber, primary)
    const severs = NodeInternal.seversOf(primary)
    const statement = Statement.run(facts, primary)
    const bounded = writeTimeout === undefined ? statement : Effect.timeoutOrElse(statement, {
      duration: writeTimeout,
      // A write is never run again: its outcome is unknown.
      orElse: () =>
        Effect.fail(Statement.asSqlError(
          new WriteOutcomeUnknown({ node: primary.id, timeoutMillis: Duration.toMillis(writeTimeout) })
        ))
    })
    return Effect.matchEffect(bounded, {
      onFailure: (error) =>
        isReadOnlyViolation(error)
          ? Effect.mapError(Membership.primaryTurnedReadOnly(state, primary, error), Statement.asSqlError)
          // Cut at a switch of primary: typed, never run again.
          : NodeInternal.seversOf(primary) !== severs && isConnectionError(error)
          ? Effect.fail(Statement.asSqlError(Membership.switchedUnderWrite(primary, error)))
          : Effect.fail(error),
      onSuccess: (value) => {
        const done = Effect.succeed(value)
        const recorded = Routing.inSession(facts.fiber)
          ? Effect.andThen(Consistency.recordCommitOnNode(state, primary), done)
          : done
        return afterWrite(primary, schemaChange, recorded)
      }
    })
  }

  const write = (facts: Statement.Facts, schemaChange: boolean): Effect.Effect<any, SqlError> =>
    // A split brain forbids writes: membership says why. Otherwise the primary, read as is.
    Routing.peek(topology.conflict).length > 0
      ? Effect.flatMap(primaryForWrite, (primary) => writeOn(facts, primary, schemaChange))
      : writeOn(facts, Routing.peek(topology.primary), schemaChange)

  return { write, primaryForWrite }
}

/**
 * What follows a write on the primary, before its value: a schema change
 * raises the DDL barrier (then `onSchemaChange`), a write while the barrier
 * is up moves it.
 * @internal
 */
export const afterWriteOn = (state: RouterState, onSchemaChange?: Effect.Effect<void> | undefined) => {
  const schemaLsn = (primary: Node.Node) => NodeInternal.query(primary, Consistency.schemaLsnQuery, [], undefined)
  return <A, E>(primary: Node.Node, schemaChange: boolean, value: Effect.Effect<A, E>): Effect.Effect<A, E> => {
    if (schemaChange) {
      const raised = Consistency.recordSchemaChange(state, schemaLsn(primary))
      return Effect.andThen(onSchemaChange === undefined ? raised : Effect.andThen(raised, onSchemaChange), value)
    }
    return Routing.extendsSchemaBarrier(state)
      ? Effect.andThen(Consistency.extendSchemaBarrier(state, schemaLsn(primary)), value)
      : value
  }
}

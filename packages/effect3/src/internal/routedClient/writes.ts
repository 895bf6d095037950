/** @internal */
import type { SqlError } from "@effect/sql/SqlError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Node from "../../Node.js"
import { WriteOutcomeUnknown } from "../../RouterError.js"
import * as Consistency from "../consistency.js"
import { isConnectionError, isReadOnlyViolation } from "../errors.js"
import * as Membership from "../health/membership.js"
import * as NodeInternal from "../node.js"
import * as Routing from "../routing/decision.js"
import * as Statement from "./statement.js"
import { annotate, count } from "./tracing.js"
import type { RouterState } from "../routerState.js"
import { SessionTag } from "../consistency.js"

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
    readonly writeTimeout?: Duration.DurationInput | undefined
    readonly onSchemaChange?: Effect.Effect<void> | undefined
  }
): Writes => {
  const { topology } = state
  const writeTimeout = options.writeTimeout === undefined ? undefined : Duration.toMillis(Duration.decode(options.writeTimeout))
  const primaryForWrite = Effect.mapError(Membership.primaryForWrite(state), Statement.asSqlError)
  const afterWrite = afterWriteOn(state, options.onSchemaChange)

  /**
   * The write on `primary`: a primary that turned read-only (failover) triggers re-discovery and fails
   * the statement. In a causal session it records the position reads need.
   */
  const writeOn = (facts: Statement.Facts, primary: Node.Node, schemaChange: boolean): Effect.Effect<any, SqlError> => {
    count(primary, "write")
    annotate(facts.span, primary)
    const severs = NodeInternal.seversOf(primary)
    return Effect.async<any, SqlError>((resume) => {
      let timer: ReturnType<typeof setTimeout> | undefined
      const running = Statement.start(facts, primary.pool, (error, result, acquired) => {
        if (timer !== undefined) clearTimeout(timer)
        if (running.abandoned) return
        if (error === undefined) {
          const value = Statement.finish(facts, result!)
          // Asked at the answer, not before the statement: the waiting fiber's context is the same, and the closure keeps one local fewer.
          const session = facts.fiber.currentContext.unsafeMap.has(SessionTag.key)
          const recorded = session ? Effect.zipRight(Consistency.recordCommitOnNode(state, primary), value) : value
          return resume(afterWrite(primary, schemaChange, recorded))
        }
        if (isReadOnlyViolation(error)) {
          return resume(Effect.mapError(Membership.primaryTurnedReadOnly(state, primary, error), Statement.asSqlError))
        }
        // Cut at a switch of primary: typed, never run again.
        if (NodeInternal.seversOf(primary) !== severs && isConnectionError(error)) {
          return resume(Effect.fail(Statement.asSqlError(Membership.switchedUnderWrite(primary, error))))
        }
        resume(Effect.fail(NodeInternal.failed(error, acquired)))
      })
      NodeInternal.watch(facts.fiber, running)
      if (writeTimeout !== undefined) {
        // The same timer as a read's, but a write is never run again: its outcome is unknown.
        timer = setTimeout(() => {
          timer = undefined
          if (running.settled || running.abandoned) return
          NodeInternal.abandon(running)
          resume(Effect.fail(Statement.asSqlError(new WriteOutcomeUnknown({ node: primary.id, timeoutMillis: writeTimeout }))))
        }, writeTimeout)
      }
    })
  }

  const write = (facts: Statement.Facts, schemaChange: boolean): Effect.Effect<any, SqlError> =>
    // A split brain forbids writes: the STM check says why. Otherwise the primary, read as is.
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
  const schemaLsn = (primary: Node.Node) => primary.connection.execute(Consistency.schemaLsnQuery, [], undefined)
  return <A, E>(primary: Node.Node, schemaChange: boolean, value: Effect.Effect<A, E>): Effect.Effect<A, E> => {
    if (schemaChange) {
      const raised = Consistency.recordSchemaChange(state, schemaLsn(primary))
      return Effect.zipRight(onSchemaChange === undefined ? raised : Effect.zipRight(raised, onSchemaChange), value)
    }
    return Routing.extendsSchemaBarrier(state)
      ? Effect.zipRight(Consistency.extendSchemaBarrier(state, schemaLsn(primary)), value)
      : value
  }
}

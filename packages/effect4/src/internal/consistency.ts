/** @internal */
import * as CausalToken from "@effect-sql-router/core/CausalToken"
import * as CoreConsistency from "@effect-sql-router/core/Consistency"
import { parseLsn } from "@effect-sql-router/core/Lsn"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Result from "effect/Result"
import type * as Connection from "effect/sql/SqlConnection"
import type { SqlError } from "effect/sql/SqlError"
import type * as Consistency from "../Consistency.js"
import type * as Node from "../Node.js"
import { InvalidToken } from "../RouterError.js"
import * as NodeInternal from "./node.js"
import type { RouterState } from "./routerState.js"
import * as Routing from "./routing/decision.js"
import { peek } from "./routing/selection.js"

/** @internal */
export { chooseRead } from "./routing/decision.js"

// A session and a staleness bound, as the fiber's context carries them: the
// read decision (routing/decision.ts) reads them once per statement (a context lookup,
// no allocation: the references' defaults are `Option.none()`), Consistency's
// combinators and layers set them.

/** @internal */
export const SessionTag = Context.Service<Consistency.Session, Ref.Ref<Consistency.SessionState>>(
  "effect-sql-router/Consistency/Session"
)

/** @internal */
export const emptyState: Consistency.SessionState = CoreConsistency.emptyState

/** The staleness bound of the reads in scope (`withMaxStaleness`, `setMaxStaleness`). @internal */
export const currentMaxStaleness = Context.Reference<Option.Option<Duration.Duration>>(
  "effect-sql-router/Consistency/currentMaxStaleness",
  { defaultValue: Option.none }
)

/** The read policy of the session reads in scope (`withReadPolicy`, `setReadPolicy`); none: the config's. @internal */
export const currentReadPolicy = Context.Reference<Option.Option<Consistency.ReadPolicy>>(
  "effect-sql-router/Consistency/currentReadPolicy",
  { defaultValue: Option.none }
)

/** The causal session of a fiber's context, if it runs in one. @internal */
export const sessionOf = (context: Context.Context<never>): Ref.Ref<Consistency.SessionState> | undefined =>
  Context.getOrUndefined(context, SessionTag)

const lsnQuery = "SELECT pg_current_wal_insert_lsn()::text AS lsn"

/** The position a capture query answered, or undefined when it failed: never a failure itself. */
const capturedLsn = (
  lsnOf: Effect.Effect<ReadonlyArray<{ readonly lsn?: unknown }>, unknown>
): Effect.Effect<bigint | undefined> =>
  Effect.map(Effect.result(lsnOf), (rows) =>
    Result.isSuccess(rows) ? parseLsn(String(rows.success[0]?.lsn ?? "")) : undefined)

/**
 * After a commit on the primary: records where the session must read from.
 * The insert position is taken after COMMIT returned, so it cannot precede
 * the commit record (pg_current_wal_lsn could, with asynchronous commit).
 * Sticky mode records only the time. No session: nothing to do, no query.
 * @internal
 */
export const recordCommit = (
  internals: RouterState,
  lsnOf: Effect.Effect<ReadonlyArray<{ readonly lsn?: unknown }>, unknown>
): Effect.Effect<void> =>
  Effect.withFiber((fiber) => {
    const session = sessionOf(fiber.context)
    if (session === undefined) return Effect.void
    return Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      if (internals.config.consistency.stickyPrimaryAfterWrite !== undefined) {
        return yield* Ref.update(session, (s) => ({ ...s, lastWriteAt: now }))
      }
      // A failed capture must not fail a write that committed; without the
      // position the session falls back to the primary's for its next read.
      const lsn = yield* capturedLsn(lsnOf)
      yield* Ref.update(session, (s) => CoreConsistency.afterCommit(s, lsn, now))
      if (lsn === undefined) yield* stickUntilCaughtUp(internals, session)
    })
  })

/** Without a captured position, the safe choice is the primary's current one. */
const stickUntilCaughtUp = (internals: RouterState, session: Ref.Ref<Consistency.SessionState>) =>
  Ref.update(session, (s) => ({ ...s, lsn: peek(internals.topology.primaryLsn) ?? BigInt(Number.MAX_SAFE_INTEGER) }))

/**
 * COMMIT for a transaction on the primary (`SqlClient.make`'s `commit`). In a
 * causal session that wants LSNs, the position is read on the same
 * connection right after COMMIT returned: the native driver speaks only the
 * extended protocol, which takes one statement per message, so it is a second
 * round trip (the Effect 3 line sends `COMMIT; SELECT …` as one message). A
 * failed COMMIT fails here, before any capture.
 * @internal
 */
export const commitRecording =
  (internals: RouterState) => (connection: Connection.Connection): Effect.Effect<void, SqlError> =>
    // Decided when the COMMIT runs: the transaction's statements mark its connection.
    Effect.suspend(() =>
      schemaChangedIn.has(connection)
        ? Effect.andThen(
          commitInSession(internals, connection),
          Effect.suspend(() => {
            schemaChangedIn.delete(connection)
            return recordSchemaChange(internals, connection.execute(schemaLsnQuery, [], undefined))
          })
        )
        : Effect.andThen(
          commitInSession(internals, connection),
          // Committed within a second of a schema change: the DDL barrier moves past it.
          Effect.suspend(() =>
            Routing.extendsSchemaBarrier(internals)
              ? extendSchemaBarrier(internals, connection.execute(schemaLsnQuery, [], undefined))
              : Effect.void
          )
        )
    )

const commitInSession = (internals: RouterState, connection: Connection.Connection): Effect.Effect<void, SqlError> =>
  Effect.withFiber((fiber) => {
    const committed = NodeInternal.commit(connection)
    if (sessionOf(fiber.context) === undefined) return committed
    return Effect.andThen(
      committed,
      recordCommit(
        internals,
        internals.config.consistency.stickyPrimaryAfterWrite !== undefined
          ? Effect.succeed([])
          : connection.execute(lsnQuery, [], undefined)
      )
    )
  })

/** After autocommit writes on the primary: any connection sees the global insert position. @internal */
export const recordCommitOnNode = (internals: RouterState, node: Node.Node): Effect.Effect<void> =>
  recordCommit(internals, NodeInternal.query(node, lsnQuery, [], undefined))

// -----------------------------------------------------------------------------
// The DDL barrier's positions
// -----------------------------------------------------------------------------

/**
 * The barrier's position: the primary's flush position after the schema
 * change committed. A synchronous COMMIT returns after its record is flushed,
 * so this is at or past it, and unlike the insert position it never counts
 * WAL that the replicas cannot have yet (a record another process inserted
 * but nobody flushed would hold the barrier up while replay is paused).
 * @internal
 */
export const schemaLsnQuery = "SELECT pg_current_wal_flush_lsn()::text AS lsn"

/** Transactions (by connection) that ran a schema change: their COMMIT raises the barrier. */
const schemaChangedIn = new WeakSet<Connection.Connection>()

/** @internal */
export const markSchemaChange = (connection: Connection.Connection): void => {
  schemaChangedIn.add(connection)
}

/**
 * After a schema change committed on the primary: reads wait for replicas
 * that replayed the primary's position. A failed capture must not fail the
 * DDL; without the position the barrier stays up until its time bound.
 * @internal
 */
export const recordSchemaChange = (
  internals: RouterState,
  lsnOf: Effect.Effect<ReadonlyArray<{ readonly lsn?: unknown }>, unknown>
): Effect.Effect<void> =>
  Effect.flatMap(
    capturedLsn(lsnOf),
    (lsn) => Routing.raiseSchemaBarrier(internals, lsn ?? BigInt(Number.MAX_SAFE_INTEGER) * 1024n)
  )

/**
 * After a write committed on the primary soon after a schema change
 * (`consistency.afterSchemaChange`): the DDL barrier moves to the primary's
 * flush position (a failed capture leaves it where it is: the write must
 * not fail for it).
 * @internal
 */
export const extendSchemaBarrier = (
  internals: RouterState,
  lsnOf: Effect.Effect<ReadonlyArray<{ readonly lsn?: unknown }>, unknown>
): Effect.Effect<void> =>
  Effect.flatMap(
    capturedLsn(lsnOf),
    (lsn) => lsn === undefined ? Effect.void : Routing.extendSchemaBarrier(internals, lsn)
  )

// -----------------------------------------------------------------------------
// Tokens: v1.<lsn hex>.<system identifier base36>.<HMAC-SHA256, 16 bytes, base64url>
// -----------------------------------------------------------------------------

// The codec is the core's (`CausalToken`); the secret is unwrapped only there.

/** @internal */
export const encodeToken = (
  internals: Pick<RouterState, "config" | "systemIdentifier">,
  state: Consistency.SessionState
): string =>
  CausalToken.encode(Redacted.value(internals.config.consistency.tokenSecret), internals.systemIdentifier, state.lsn)

/** @internal */
export const decodeToken = (
  internals: Pick<RouterState, "config" | "systemIdentifier">,
  token: string
): Effect.Effect<Consistency.SessionState, InvalidToken> =>
  Effect.suspend(() => {
    const decoded = CausalToken.decode(
      Redacted.value(internals.config.consistency.tokenSecret),
      internals.systemIdentifier,
      token
    )
    return decoded._tag === "Invalid"
      ? Effect.fail(new InvalidToken({ reason: decoded.reason }))
      : Effect.succeed({ lsn: decoded.lsn, lastWriteAt: undefined })
  })

/** Runs `effect` in a session of its own that starts at `initial`. @internal */
export const inNewSession = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  initial: Consistency.SessionState
): Effect.Effect<A, E, Exclude<R, Consistency.Session>> =>
  Effect.flatMap(Ref.make(initial), (ref) => Effect.provideService(effect, SessionTag, ref))

/** Runs `effect` in the current session, or in a new one. @internal */
export const session = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  initial: Consistency.SessionState = emptyState
): Effect.Effect<A, E, Exclude<R, Consistency.Session>> =>
  Effect.withFiber((fiber) =>
    sessionOf(fiber.context) !== undefined
      ? effect as Effect.Effect<A, E, Exclude<R, Consistency.Session>>
      : inNewSession(effect, initial)
  )

/** @internal */
import * as CausalToken from "@effect-sql-router/core/CausalToken"
import * as CoreConsistency from "@effect-sql-router/core/Consistency"
import type * as Connection from "@effect/sql/SqlConnection"
import type { SqlError } from "@effect/sql/SqlError"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import { globalValue } from "effect/GlobalValue"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as STM from "effect/STM"
import * as TRef from "effect/TRef"
import type * as Consistency from "../Consistency.js"
import type * as Node from "../Node.js"
import { InvalidToken } from "../RouterError.js"
import { parseLsn } from "./health/monitor.js"
import type { RouterState } from "./routerState.js"
import * as Routing from "./routing/decision.js"
import { raiseSchemaBarrier } from "./routing/decision.js"

/** @internal */
export { chooseRead } from "./routing/decision.js"

// A session and a staleness bound, as the fiber carries them: the read
// decision (routing/decision.ts) reads them, Consistency's combinators set them.

/** @internal */
export const SessionTag = Context.GenericTag<Consistency.Session, Ref.Ref<Consistency.SessionState>>(
  "effect-sql-router/Consistency/Session"
)

/** @internal */
export const emptyState: Consistency.SessionState = CoreConsistency.emptyState

/** @internal */
export const currentMaxStaleness = globalValue(
  Symbol.for("effect-sql-router/Consistency/currentMaxStaleness"),
  () => FiberRef.unsafeMake<Option.Option<Duration.Duration>>(Option.none())
)

/** @internal */
export const currentReadPolicy = globalValue(
  Symbol.for("effect-sql-router/Consistency/currentReadPolicy"),
  () => FiberRef.unsafeMake<Option.Option<Consistency.ReadPolicy>>(Option.none())
)

const lsnQuery = "SELECT pg_current_wal_insert_lsn()::text AS lsn"

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
  Effect.withFiberRuntime((fiber) => {
    const session = Context.getOption(fiber.currentContext, SessionTag)
    if (session._tag === "None") return Effect.void
    return Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      if (internals.config.consistency.stickyPrimaryAfterWrite !== undefined) {
        return yield* Ref.update(session.value, (s) => ({ ...s, lastWriteAt: now }))
      }
      // A failed capture must not fail a write that committed; without the
      // position the session falls back to the primary for its next read.
      const rows = yield* Effect.either(lsnOf)
      const lsn = rows._tag === "Right" ? parseLsn(String(rows.right[0]?.lsn ?? "")) : undefined
      yield* Ref.update(session.value, (s) => CoreConsistency.afterCommit(s, lsn, now))
      if (lsn === undefined) yield* stickUntilCaughtUp(internals, session.value)
    })
  })

/** Without a captured position, the safe choice is the primary's current one. */
const stickUntilCaughtUp = (internals: RouterState, session: Ref.Ref<Consistency.SessionState>) =>
  Effect.flatMap(STM.commit(TRef.get(internals.topology.primaryLsn)), (lsn) =>
    Ref.update(session, (s) => ({ ...s, lsn: lsn ?? BigInt(Number.MAX_SAFE_INTEGER) })))

/**
 * COMMIT for a transaction on the primary. In a causal session that wants
 * LSNs, the position is read in the same round trip: `COMMIT; SELECT
 * pg_current_wal_insert_lsn()` as one simple-protocol message. A failed
 * COMMIT stops the message there, so this fails exactly when COMMIT does.
 * @internal
 */
export const commitRecording = (internals: RouterState) => (connection: Connection.Connection): Effect.Effect<void, SqlError> =>
  schemaChangedIn.has(connection)
    ? Effect.zipRight(
      commitInSession(internals, connection),
      Effect.suspend(() => {
        schemaChangedIn.delete(connection)
        return recordSchemaChange(internals, connection.execute(schemaLsnQuery, [], undefined))
      })
    )
    : Effect.zipRight(
      commitInSession(internals, connection),
      // Committed within a second of a schema change: the DDL barrier moves past it.
      Effect.suspend(() =>
        Routing.extendsSchemaBarrier(internals)
          ? extendSchemaBarrier(internals, connection.execute(schemaLsnQuery, [], undefined))
          : Effect.void
      )
    )

const commitInSession = (internals: RouterState, connection: Connection.Connection): Effect.Effect<void, SqlError> =>
  Effect.withFiberRuntime((fiber) => {
    const session = Context.getOption(fiber.currentContext, SessionTag)
    const plain = Effect.asVoid(connection.executeUnprepared("COMMIT", [], undefined))
    if (session._tag === "None") return plain
    if (internals.config.consistency.stickyPrimaryAfterWrite !== undefined) {
      return Effect.zipRight(plain, recordCommit(internals, Effect.succeed([])))
    }
    return Effect.flatMap(
      connection.executeUnprepared(`COMMIT; ${lsnQuery}`, [], undefined),
      (results) => recordCommit(internals, Effect.succeed((results as ReadonlyArray<ReadonlyArray<{ lsn?: unknown }>>)[1] ?? []))
    )
  })

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

/** The position a capture query answered, or undefined when it failed: never a failure itself. */
const capturedLsn = (
  lsnOf: Effect.Effect<ReadonlyArray<{ readonly lsn?: unknown }>, unknown>
): Effect.Effect<bigint | undefined> =>
  Effect.map(Effect.either(lsnOf), (rows) =>
    rows._tag === "Right" ? parseLsn(String(rows.right[0]?.lsn ?? "")) : undefined)

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
  Effect.flatMap(capturedLsn(lsnOf), (lsn) => raiseSchemaBarrier(internals, lsn ?? BigInt(Number.MAX_SAFE_INTEGER) * 1024n))

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
  Effect.flatMap(capturedLsn(lsnOf), (lsn) => lsn === undefined ? Effect.void : Routing.extendSchemaBarrier(internals, lsn))

/** After autocommit writes on the primary: any connection sees the global insert position. @internal */
export const recordCommitOnNode = (internals: RouterState, node: Node.Node) =>
  recordCommit(internals, node.connection.execute(lsnQuery, [], undefined))

// -----------------------------------------------------------------------------
// Tokens: v1.<lsn hex>.<system identifier base36>.<HMAC-SHA256, 16 bytes, base64url>
// -----------------------------------------------------------------------------

// The codec is the core's (`CausalToken`); the secret is unwrapped only there.

/** @internal */
export const encodeToken = (internals: Pick<RouterState, "config" | "systemIdentifier">, state: Consistency.SessionState): string =>
  CausalToken.encode(Redacted.value(internals.config.consistency.tokenSecret), internals.systemIdentifier, state.lsn)

/** @internal */
export const decodeToken = (internals: Pick<RouterState, "config" | "systemIdentifier">, token: string): Effect.Effect<Consistency.SessionState, InvalidToken> =>
  Effect.suspend(() => {
    const decoded = CausalToken.decode(Redacted.value(internals.config.consistency.tokenSecret), internals.systemIdentifier, token)
    return decoded._tag === "Invalid"
      ? Effect.fail(new InvalidToken({ reason: decoded.reason }))
      : Effect.succeed({ lsn: decoded.lsn, lastWriteAt: undefined })
  })

/** Runs `effect` in the current session, or in a new one. @internal */
export const session = <A, E, R>(effect: Effect.Effect<A, E, R>, initial: Consistency.SessionState = emptyState) =>
  Effect.withFiberRuntime<A, E, Exclude<R, Consistency.Session>>((fiber) =>
    Context.getOption(fiber.currentContext, SessionTag)._tag === "Some"
      ? effect as Effect.Effect<A, E, Exclude<R, Consistency.Session>>
      : Effect.flatMap(Ref.make(initial), (ref) => Effect.provideService(effect, SessionTag, ref)) as Effect.Effect<
        A,
        E,
        Exclude<R, Consistency.Session>
      >
  )

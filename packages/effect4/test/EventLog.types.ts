// Typecheck-only (never run): `npm run typecheck` (first step of `npm test`)
// compiles this file, and every `@ts-expect-error` below fails the build if
// the line under it ever compiles. This proves the read/write intent is in
// the types: no write inside `EventLog.readOnly`.
import * as Effect from "effect/Effect"
import * as SqlClient from "effect/sql/SqlClient"
import * as EventLog from "@effect-sql-router/effect4/EventLog"

const event: EventLog.NewEvent = { typeName: "Deposited", payload: { amount: 1 } }

// Reads compile inside readOnly, through the reader or through the Reader service.
export const reads: Effect.Effect<
  number,
  EventLog.ReadError | EventLog.InvalidEvent | EventLog.UsageError,
  EventLog.EventLog
> = EventLog.readOnly((reader) =>
  Effect.andThen(reader.eventAtVersion(1), EventLog.systemVersion)
)

// The transaction's SqlClient is provided to the body, in readOnly and readWrite alike.
export const ownStatement: Effect.Effect<unknown, EventLog.ReadError, EventLog.EventLog> = EventLog.readOnly(() =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT 1`)
)

// Writes compile inside readWrite, through the writer or through the Writer service.
export const writes = EventLog.readWrite((tx) =>
  Effect.flatMap(tx.systemVersion, (version) =>
    Effect.andThen(tx.appendEvent(version, event), EventLog.setProjectionVersion(1, version + 1)))
)
export const writesNeedOnlyTheLog: Effect.Effect<void, unknown, EventLog.EventLog> = writes

// The reader has no write methods.
export const noAppendOnReader = EventLog.readOnly((reader) =>
  // @ts-expect-error appendEvent does not exist on a Reader
  reader.appendEvent(0, event)
)

export const noProjectionWriteOnReader = EventLog.readOnly((reader) =>
  // @ts-expect-error setProjectionVersion does not exist on a Reader
  reader.setProjectionVersion(1, 2)
)

// An effect that needs the Writer service cannot run inside readOnly.
export const noWriterServiceInReadOnly = EventLog.readOnly(() =>
  // @ts-expect-error EventLog.Writer in the R channel is refused by readOnly
  EventLog.appendEvent(0, event)
)

// Also when the write is deep inside a larger effect.
const helper = Effect.gen(function*() {
  const version = yield* EventLog.systemVersion
  yield* EventLog.initProjectionVersion(7)
  return version
})
export const noWriterServiceDeepInside = EventLog.readOnly(() =>
  // @ts-expect-error the helper needs EventLog.Writer
  helper
)

// And through the service method, not only the module function.
export const noWriterThroughService = Effect.flatMap(EventLog.EventLog, (log) =>
  log.readOnly(() =>
    // @ts-expect-error EventLog.Writer in the R channel is refused by readOnly
    EventLog.setProjectionVersion(1, 1)
  ))

// The same helper is fine in readWrite.
export const helperInReadWrite: Effect.Effect<number, unknown, EventLog.EventLog> = EventLog.readWrite(() => helper)

// The refusal is the message itself, so it is what the compiler says first
// (test/EventLog.test.ts checks the diagnostic under exactOptionalPropertyTypes).
export const refusal: EventLog.ReadOnlyBody<number, never, EventLog.Writer> =
  "EventLog.readOnly: this effect needs EventLog.Writer; use EventLog.readWrite"

// Usage errors are in the types of every Reader and Writer operation.
export const usage: Effect.Effect<
  number,
  EventLog.VersionMismatch | EventLog.InvalidEvent | EventLog.UsageError | EventLog.WriteError,
  EventLog.EventLog
> =
  EventLog.readWrite((tx) => tx.appendEvent(0, { typeName: "Noted", payload: EventLog.rawJson("{}") }))

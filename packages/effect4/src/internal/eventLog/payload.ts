/** @internal */
import * as Payload from "@effect-sql-router/core/eventLog/Payload"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as SchemaIssue from "effect/SchemaIssue"
import * as SchemaTransformation from "effect/SchemaTransformation"
import type * as EventLog from "../../EventLog.js"
import { InvalidEvent } from "./errors.js"

/** @internal */
export type Payloads = Readonly<Record<string, Schema.Codec<any, any, never, never>>>

// -----------------------------------------------------------------------------
// Rows
// -----------------------------------------------------------------------------

/** int8 arrives as a bigint from the native driver; versions stay below 2^53. */
const Version = Schema.BigInt.pipe(
  Schema.decodeTo(Schema.Number, SchemaTransformation.transform({ decode: Number, encode: BigInt }))
)

/** The driver gives `timestamptz` as a `Date` and `jsonb` parsed. */
const Row = Schema.Struct({
  version: Version,
  type_name: Schema.String,
  payload: Schema.Unknown,
  time: Schema.Date,
  revision_vcs: Schema.String
})

const decodeRow = Schema.decodeUnknownEffect(Row)

/** @internal */
export const versionOf = (rows: ReadonlyArray<{ readonly version: unknown }>): number => Number(rows[0]?.version ?? 0)

const formatIssues = SchemaIssue.makeFormatterStandardSchemaV1()

/**
 * Where a payload Schema refused, and what it expected. Schema reports no
 * input unless asked (`reportInput`), and we never ask: a payload may hold
 * secrets, and errors are logged.
 */
const schemaRefusal = (error: Schema.SchemaError): Payload.JsonProblem => {
  const issue = formatIssues(error.issue).issues[0]
  const expected = issue === undefined ? "" : `: ${issue.message}`
  const keys = (issue?.path ?? []).map((segment) => typeof segment === "object" ? segment.key : segment)
  return { path: Payload.payloadPath(keys), reason: `its payload Schema refused it${expected}` }
}

/** @internal */
export const decodeEvent = (payloads: Payloads) => (raw: unknown): Effect.Effect<EventLog.Event, InvalidEvent> =>
  Effect.gen(function*() {
    const row = yield* decodeRow(raw).pipe(
      Effect.mapError((cause) => new InvalidEvent({ typeName: "?", reason: cause.message, cause }))
    )
    const schema = payloads[row.type_name]
    const payload = schema === undefined ? row.payload : yield* Schema.decodeUnknownEffect(schema)(row.payload).pipe(
      Effect.mapError((cause) => new InvalidEvent({ typeName: row.type_name, version: row.version, ...schemaRefusal(cause), cause }))
    )
    return {
      version: row.version,
      typeName: row.type_name,
      payload,
      time: row.time,
      revisionVcs: row.revision_vcs
    }
  })

// -----------------------------------------------------------------------------
// Payloads
// -----------------------------------------------------------------------------

/** @internal */
export const RawJsonTypeId: EventLog.RawJsonTypeId = Symbol.for("effect-sql-router/EventLog/RawJson") as EventLog.RawJsonTypeId

/** @internal */
export const rawJson = (text: string): EventLog.RawJson => ({ [RawJsonTypeId]: RawJsonTypeId, text })

/** @internal */
export const isRawJson = (value: unknown): value is EventLog.RawJson =>
  typeof value === "object" && value !== null && RawJsonTypeId in value

const refusal = (typeName: string, refused: Payload.JsonRefusal) =>
  new InvalidEvent(
    refused.cause === undefined
      ? { typeName, path: refused.path, reason: refused.reason }
      : { typeName, path: refused.path, reason: refused.reason, cause: refused.cause }
  )

/**
 * The JSON text stored for an event's payload: raw JSON text as it is, once
 * the core accepts it and, when the type has a payload Schema, it decodes
 * with it (the text is the encoded form); any other payload encoded with its
 * type's Schema, if it has one, then checked and written as JSON.
 * @internal
 */
export const encodePayload = (
  payloads: Payloads,
  event: { readonly typeName: string; readonly payload: unknown }
): Effect.Effect<string, InvalidEvent> => {
  const { payload, typeName } = event
  const schema = payloads[typeName]
  if (isRawJson(payload)) {
    const raw = Payload.fromRawJson(payload.text)
    if (raw._tag === "Refused") return Effect.fail(refusal(typeName, raw))
    return schema === undefined ? Effect.succeed(raw.text) : Schema.decodeUnknownEffect(schema)(raw.value).pipe(
      Effect.mapError((cause) => new InvalidEvent({ typeName, ...schemaRefusal(cause), cause })),
      Effect.as(raw.text)
    )
  }
  const json = (value: unknown) => {
    const result = Payload.toJson(value)
    return result._tag === "Refused" ? Effect.fail(refusal(typeName, result)) : Effect.succeed(result.text)
  }
  return schema === undefined ? json(payload) : Schema.encodeUnknownEffect(schema)(payload).pipe(
    Effect.mapError((cause) => new InvalidEvent({ typeName, ...schemaRefusal(cause), cause })),
    Effect.flatMap(json)
  )
}

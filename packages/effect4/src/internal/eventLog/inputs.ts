/** @internal */
import * as Inputs from "@effect-sql-router/core/eventLog/Inputs"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { InvalidInput } from "./errors.js"

// The rules are the core's predicates; Schema adds where in an options
// object a field was refused.

/** A reason that replaces Schema's (which quotes the value: a payload may hold secrets). */
const rule = (message: string) => ({ message: () => ({ message, override: true }) })

const TypeName = Schema.String.pipe(
  Schema.filter((text) => Inputs.isTypeName(text)),
  Schema.annotations(rule(Inputs.typeNameRule))
)

const RevisionVcs = Schema.String.pipe(
  Schema.filter((text) => Inputs.isRevisionVcs(text)),
  Schema.annotations(rule(Inputs.revisionVcsRule))
)

const Count = (minimum: number) =>
  Schema.Number.pipe(
    Schema.filter((n) => Inputs.isCount(n, minimum)),
    Schema.annotations(rule(Inputs.countRule(minimum)))
  )

const VersionInput = Count(0)

const ProjectionId = Schema.Number.pipe(
  Schema.filter((n) => Inputs.isProjectionId(n)),
  Schema.annotations(rule(Inputs.projectionIdRule))
)

/** An optional field: `undefined` or the schema, refused with the schema's own rule. */
const optionalOf = <S extends Schema.Schema.Any>(schema: S, message: string) =>
  Schema.optional(Schema.UndefinedOr(schema).annotations(rule(message)))

/** A struct's rule is used only when the value is not an object; its fields keep theirs. */
const shape = (message: string) => ({ message: () => message })

const NewEventInput = Schema.Struct({
  typeName: TypeName,
  payload: Schema.Unknown,
  revisionVcs: optionalOf(RevisionVcs, Inputs.revisionVcsRule)
}).annotations(shape(Inputs.shapeRules.newEvent))

const ReadEventsInput = Schema.Struct({
  atVersion: VersionInput,
  reverse: optionalOf(Schema.Boolean, Inputs.booleanRule),
  limit: Count(0)
}).annotations(shape(Inputs.shapeRules.readEvents))

const StreamInput = Schema.Struct({
  atVersion: optionalOf(VersionInput, Inputs.versionRule),
  reverse: optionalOf(Schema.Boolean, Inputs.booleanRule),
  pageSize: optionalOf(Count(1), Inputs.countRule(1))
}).annotations(shape(Inputs.shapeRules.options))

const ListenInput = Schema.Struct({
  from: optionalOf(VersionInput, Inputs.versionRule),
  mode: optionalOf(Schema.Literal(...Inputs.listenModes), Inputs.listenModeRule)
}).annotations(shape(Inputs.shapeRules.options))

/**
 * Decodes one argument; a refusal names it (with the path inside it, for
 * options) and never quotes the value.
 */
const checked = <A, I>(operation: string, argument: string, schema: Schema.Schema<A, I, never>) => {
  const decode = Schema.decodeUnknownEither(schema, { errors: "first" })
  return (value: unknown): Effect.Effect<A, InvalidInput> =>
    Either.match(decode(value), {
      onRight: Effect.succeed,
      onLeft: (error) => {
        const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
        const path = issue?.path.map((key) => `.${String(key)}`).join("") ?? ""
        return Effect.fail(
          new InvalidInput({
            operation,
            argument: `${argument}${path}`,
            reason: issue === undefined || issue._tag === "Missing" ? "is missing" : issue.message
          })
        )
      }
    })
}

/**
 * Every operation's argument checks, each decoder built once.
 * @internal
 */
export const inputs = {
  eventAtVersion: checked("eventAtVersion", "version", VersionInput),
  eventAfterVersion: checked("eventAfterVersion", "version", VersionInput),
  projectionVersion: checked("projectionVersion", "id", ProjectionId),
  events: checked("events", "options", ReadEventsInput),
  initProjectionVersion: checked("initProjectionVersion", "id", ProjectionId),
  setProjectionId: checked("setProjectionVersion", "id", ProjectionId),
  setProjectionVersion: checked("setProjectionVersion", "version", VersionInput),
  assumedVersion: checked("appendEvent", "assumedVersion", VersionInput),
  event: checked("appendEvent", "event", NewEventInput),
  stream: checked("stream", "options", StreamInput),
  listen: checked("listen", "options", ListenInput)
}

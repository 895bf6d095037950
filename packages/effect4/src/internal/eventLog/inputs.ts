/** @internal */
import * as Inputs from "@effect-sql-router/core/eventLog/Inputs"
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as SchemaIssue from "effect/SchemaIssue"
import { InvalidInput } from "./errors.js"

// The rules are the core's predicates; Schema adds where in an options
// object a field was refused.

/**
 * A value the core's predicate accepts, refused with the core's rule: one
 * check over `Unknown`, so that a wrong type gets the rule too. Schema does
 * not report the input (no `reportInput`), and the rule never quotes it.
 */
const ruled = <T>(accepts: (value: unknown) => value is T, rule: string) =>
  Schema.Unknown.pipe(Schema.refine(accepts, { message: rule }))

/** An optional field: absent, `undefined`, or what `accepts` accepts. */
const optionalRuled = <T>(accepts: (value: unknown) => value is T, rule: string) =>
  Schema.optionalKey(ruled((value): value is T | undefined => value === undefined || accepts(value), rule))

const count = (minimum: number) => (value: unknown): value is number => Inputs.isCount(value, minimum)

const isBoolean = (value: unknown): value is boolean => typeof value === "boolean"

const isListenMode = (value: unknown): value is typeof Inputs.listenModes[number] =>
  (Inputs.listenModes as ReadonlyArray<unknown>).includes(value)

const TypeName = ruled(Inputs.isTypeName, Inputs.typeNameRule)

const VersionInput = ruled(Inputs.isVersion, Inputs.versionRule)

const ProjectionId = ruled(Inputs.isProjectionId, Inputs.projectionIdRule)

/** A struct's rule is used only when the value is not an object; its fields keep theirs. */
const shape = (rule: string) => ({ message: rule })

const NewEventInput = Schema.Struct({
  typeName: TypeName,
  payload: Schema.Unknown,
  revisionVcs: optionalRuled(Inputs.isRevisionVcs, Inputs.revisionVcsRule)
}).annotate(shape(Inputs.shapeRules.newEvent))

const ReadEventsInput = Schema.Struct({
  atVersion: VersionInput,
  reverse: optionalRuled(isBoolean, Inputs.booleanRule),
  limit: ruled(count(0), Inputs.countRule(0))
}).annotate(shape(Inputs.shapeRules.readEvents))

const StreamInput = Schema.Struct({
  atVersion: optionalRuled(Inputs.isVersion, Inputs.versionRule),
  reverse: optionalRuled(isBoolean, Inputs.booleanRule),
  pageSize: optionalRuled(count(1), Inputs.countRule(1))
}).annotate(shape(Inputs.shapeRules.options))

const ListenInput = Schema.Struct({
  from: optionalRuled(Inputs.isVersion, Inputs.versionRule),
  mode: optionalRuled(isListenMode, Inputs.listenModeRule)
}).annotate(shape(Inputs.shapeRules.options))

/** A Standard Schema path segment: a key, or an object that holds one. */
const keyOf = (segment: PropertyKey | { readonly key: PropertyKey }): PropertyKey =>
  typeof segment === "object" ? segment.key : segment

/** Schema's messages, with a missing field said as the other rules say theirs. */
const formatIssues = SchemaIssue.makeFormatterStandardSchemaV1({
  leafHook: (issue) => issue._tag === "MissingKey" ? "is missing" : SchemaIssue.defaultLeafHook(issue)
})

/**
 * Decodes one argument; a refusal names it (with the path inside it, for
 * options) and never quotes the value.
 */
const checked = <A>(operation: string, argument: string, schema: Schema.Codec<A, unknown>) => {
  const decode = Schema.decodeUnknownResult(schema)
  return (value: unknown): Effect.Effect<A, InvalidInput> => {
    const result = decode(value)
    if (Result.isSuccess(result)) return Effect.succeed(result.success)
    const issue = formatIssues(result.failure.issue).issues[0]
    const path = (issue?.path ?? []).map((segment) => `.${String(keyOf(segment))}`).join("")
    return Effect.fail(
      new InvalidInput({ operation, argument: `${argument}${path}`, reason: issue?.message ?? "is invalid" })
    )
  }
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

/** @internal */
import * as Selection from "@effect-sql-router/core/Selection"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as SchemaGetter from "effect/SchemaGetter"
import * as SchemaIssue from "effect/SchemaIssue"
import * as ConnectionString from "../connectionString.js"

// -----------------------------------------------------------------------------
// The enums, each from one tuple
// -----------------------------------------------------------------------------

/** @internal */
export const selections = Selection.names
/** @internal */
export const discoveries = ["manual", "auto"] as const
/** @internal */
export const primaryReadModes = ["fallback", "overflow"] as const
/** @internal */
export const notCaughtUpPolicies = ["primary", "fail"] as const
/** @internal */
export const healthClocks = ["live", "ambient"] as const

/** @internal */
export const oneOf = (values: ReadonlyArray<string>) => `must be one of ${values.map((v) => `"${v}"`).join(", ")}`

// -----------------------------------------------------------------------------
// One Schema: its encoded side is the JSON form that `save` writes and `load`
// reads; its type side is what users write and `resolve` validates.
// -----------------------------------------------------------------------------

/** @internal */
export const holds = <A>(predicate: (a: A) => boolean) => Schema.makeFilter<A>((a) => predicate(a))

/** A connection string: a string in JSON, `Redacted` on the type side. @internal */
export const Url = Schema.RedactedFromValue(Schema.String).check(
  holds((url) => ConnectionString.isPostgresUrl(Redacted.value(url)))
)

const durationUnits = new Set(["weeks", "days", "hours", "minutes", "seconds", "milliseconds", "microseconds", "nanoseconds"])

/**
 * What `Duration.fromInput` reads, without its leniency for objects: an
 * object is read only when it has duration units and nothing else, so that
 * `{ password: ... }` put in a duration's place is refused, not read as zero.
 */
const isDurationInput = (u: unknown): u is Duration.Input => {
  if (Duration.isDuration(u)) return true
  if (typeof u === "object" && u !== null && !Array.isArray(u)) {
    const entries = Object.entries(u)
    if (entries.length === 0 || !entries.every(([key, value]) => durationUnits.has(key) && typeof value === "number")) {
      return false
    }
  } else if (!["number", "bigint", "string"].includes(typeof u) && !Array.isArray(u)) {
    return false
  }
  return Option.isSome(Duration.fromInput(u as Duration.Input))
}

const DurationInput = Schema.declare(isDurationInput, { identifier: "DurationInput" })

/** JSON holds milliseconds (or a text such as "5 seconds"); the type side any `Duration.Input`. */
const durationField = (isValid: (d: Duration.Duration) => boolean) =>
  Schema.Union([Schema.Number, Schema.String]).pipe(
    Schema.decodeTo(DurationInput.check(holds((input) => isValid(Duration.fromInputUnsafe(input)))), {
      decode: SchemaGetter.transformEffect((json: number | string) =>
        typeof json === "number"
          ? Effect.succeed<Duration.Input>(Duration.millis(json))
          : Option.match(isDurationInput(json) ? Duration.fromInput(json) : Option.none(), {
            onNone: () => Effect.fail(new SchemaIssue.InvalidValue({ message: "is not a duration" })),
            onSome: (duration) => Effect.succeed<Duration.Input>(duration)
          })
      ),
      encode: SchemaGetter.transform((input: Duration.Input) => Duration.toMillis(Duration.fromInputUnsafe(input)))
    })
  )

/** @internal */
export const PositiveDuration = durationField((d) => Duration.isPositive(d) && Duration.isFinite(d))
/** @internal */
export const NonNegativeDuration = durationField((d) => !Duration.isNegative(d) && Duration.isFinite(d))

/** @internal */
export const wholeNumber = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  Schema.Number.check(holds((n) => Number.isInteger(n) && n >= min && n <= max))

/** @internal */
export const PoolSize = wholeNumber(1, 10_000)

/** A REST API base URL (`http://db1:8008`); it may hold credentials, so it is Redacted. @internal */
export const isRestUrl = (text: string): boolean => {
  try {
    const url = new URL(text)
    return (url.protocol === "http:" || url.protocol === "https:") && url.hostname !== ""
  } catch {
    return false
  }
}

/** @internal */
export const RestUrl = Schema.RedactedFromValue(Schema.String).check(holds((url) => isRestUrl(Redacted.value(url))))

/** @internal */
export const restUrl = "must be a Redacted http:// or https:// URL of a Patroni REST API (e.g. http://db1:8008)"

/** @internal */
export const Secret = Schema.RedactedFromValue(Schema.String).check(holds((secret) => Redacted.value(secret).length >= 16))

// -----------------------------------------------------------------------------
// One declaration per option: its Schema (the type side is what users write,
// the encoded side the JSON that `save` writes and `load` reads), what it must
// be (the reason an InvalidConfig gives: chosen by the option, never taken
// from Schema, whose messages can quote the value, and a value may be a
// password), and how it resolves (its default). The Schema of the whole, the
// public input and resolved types, the reasons and the defaults all derive
// from the tables below, and each option's JSDoc there is the one users read.
// -----------------------------------------------------------------------------

/** @internal */
export interface Setting<S extends Schema.Top, R> {
  readonly schema: S
  /** What the option must be. */
  readonly reason: string
  /** What each element must be, for an array. */
  readonly elements?: string | undefined
  /** The resolved value: the input, or the default. */
  readonly resolve: (input: S["Type"] | undefined) => R
  /** For an object of options: its options. */
  readonly options?: Settings | undefined
}

/** @internal */
export type Settings = { readonly [name: string]: Setting<any, unknown> }

/** @internal */
export const option = <S extends Schema.Top, R>(
  schema: S,
  reason: string,
  resolve: (input: S["Type"] | undefined) => R,
  elements?: string
): Setting<S, R> => ({ schema, reason, resolve, elements })

/** @internal */
export type StructOf<O extends Settings> = Schema.Struct<{ readonly [K in keyof O]: Schema.optional<O[K]["schema"]> }>

type ResolvedAt<O extends Settings, K extends keyof O> = ReturnType<O[K]["resolve"]>

/** The options of an object, resolved one by one; an option with no default stays optional. @internal */
export type ResolvedOf<O extends Settings> =
  & { readonly [K in keyof O as undefined extends ResolvedAt<O, K> ? never : K]: ResolvedAt<O, K> }
  & { readonly [K in keyof O as undefined extends ResolvedAt<O, K> ? K : never]?: ResolvedAt<O, K> }

/** @internal */
export const structOf = <O extends Settings>(options: O): StructOf<O> =>
  Schema.Struct(
    Object.fromEntries(Object.entries(options).map(([name, option]) => [name, Schema.optional(option.schema)]))
  ) as unknown as StructOf<O>

/** @internal */
export const resolveAll = <O extends Settings>(options: O, input: Readonly<Record<string, unknown>>): ResolvedOf<O> =>
  Object.fromEntries(
    Object.entries(options).map(([name, option]) => [name, option.resolve(input[name])])
  ) as ResolvedOf<O>

const objectOf = (options: Settings) => `must be an object with any of ${Object.keys(options).join(", ")}`

/** An object of options: an absent one resolves to every default. @internal */
export const group = <O extends Settings>(options: O): Setting<StructOf<O>, ResolvedOf<O>> => ({
  schema: structOf(options),
  reason: objectOf(options),
  resolve: (input) => resolveAll(options, (input ?? {}) as Readonly<Record<string, unknown>>),
  options
})

/** An optional object of options: absent, it stays absent (the feature is off). @internal */
export const optionalGroup = <O extends Settings>(options: O): Setting<StructOf<O>, ResolvedOf<O> | undefined> => ({
  schema: structOf(options),
  reason: objectOf(options),
  resolve: (input) =>
    input === undefined ? undefined : resolveAll(options, input as Readonly<Record<string, unknown>>),
  options
})

/** @internal */
export const positive = "must be a positive, finite duration (e.g. \"5 seconds\", or a number of milliseconds)"
/** @internal */
export const durationOr = (fallback: Duration.Input) => (input: Duration.Input | undefined) =>
  Duration.fromInputUnsafe(input ?? fallback)
/** @internal */
export const durationIfSet = (input: Duration.Input | undefined) =>
  input === undefined ? undefined : Duration.fromInputUnsafe(input)
/** @internal */
export const asGiven = <A>(input: A | undefined): A | undefined => input
/** @internal */
export const poolSize = "must be a whole number from 1 to 10000"
/** @internal */
export const trueOrFalse = "must be true or false"

/** @internal */
import type * as PlatformError from "@effect/platform/Error"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Selection from "@effect-sql-router/core/Selection"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type { Resolved, RouterConfig } from "../RouterConfig.js"
import { InvalidConfig } from "../RouterError.js"
import * as CdcSchema from "./cdcSchema.js"
import * as Crypto from "node:crypto"
import * as ConnectionString from "./connectionString.js"

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

const oneOf = (values: ReadonlyArray<string>) => `must be one of ${values.map((v) => `"${v}"`).join(", ")}`

// -----------------------------------------------------------------------------
// One Schema: its encoded side is the JSON form that `save` writes and `load`
// reads; its type side is what users write and `resolve` validates.
// -----------------------------------------------------------------------------

const Url = Schema.Redacted(Schema.String).pipe(
  Schema.filter((url) => ConnectionString.isPostgresUrl(Redacted.value(url)))
)

const DurationInput = Schema.declare(
  (u: unknown): u is Duration.DurationInput => Option.isSome(Duration.decodeUnknown(u)),
  { identifier: "DurationInput" }
)

/** JSON holds milliseconds (or a text such as "5 seconds"); the type side any `DurationInput`. */
const durationField = (isValid: (d: Duration.Duration) => boolean) =>
  Schema.transformOrFail(
    Schema.Union(Schema.Number, Schema.String),
    DurationInput.pipe(Schema.filter((input) => isValid(Duration.decode(input)))),
    {
      strict: true,
      decode: (json, _, ast) =>
        typeof json === "number"
          ? ParseResult.succeed(Duration.millis(json))
          : Option.match(Duration.decodeUnknown(json), {
            onNone: () => ParseResult.fail(new ParseResult.Type(ast, json)),
            onSome: ParseResult.succeed
          }),
      encode: (input) => ParseResult.succeed(Duration.toMillis(Duration.decode(input)))
    }
  )

const PositiveDuration = durationField((d) => Duration.greaterThan(d, Duration.zero) && Duration.isFinite(d))
const NonNegativeDuration = durationField(Duration.isFinite)

const wholeNumber = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  Schema.Number.pipe(Schema.filter((n) => Number.isInteger(n) && n >= min && n <= max))

const PoolSize = wholeNumber(1, 10_000)

const Secret = Schema.Redacted(Schema.String).pipe(Schema.filter((secret) => Redacted.value(secret).length >= 16))

const Health = Schema.Struct({
  interval: Schema.optional(PositiveDuration),
  timeout: Schema.optional(PositiveDuration),
  failureThreshold: Schema.optional(wholeNumber(1)),
  successThreshold: Schema.optional(wholeNumber(1)),
  enabled: Schema.optional(Schema.Boolean),
  clock: Schema.optional(Schema.Literal("live", "ambient")),
  slowStart: Schema.optional(PositiveDuration)
})

const MaxLag = Schema.Struct({
  time: Schema.optional(PositiveDuration),
  bytes: Schema.optional(wholeNumber(0))
})

const Consistency = Schema.Struct({
  maxWait: Schema.optional(NonNegativeDuration),
  onNotCaughtUp: Schema.optional(Schema.Literal(...notCaughtUpPolicies)),
  stickyPrimaryAfterWrite: Schema.optional(PositiveDuration),
  afterSchemaChange: Schema.optional(NonNegativeDuration),
  tokenSecret: Schema.optional(Secret)
})

/** Every option except `validate` (a function has no JSON form). @internal */
export const Json = Schema.Struct({
  primary: Schema.optional(Url),
  discovery: Schema.optional(Schema.Literal(...discoveries)),
  hosts: Schema.optional(Schema.Array(Url)),
  primaryMaxSize: Schema.optional(PoolSize),
  replicas: Schema.optional(Schema.Array(Url)),
  replicaMaxSizeEach: Schema.optional(PoolSize),
  selection: Schema.optional(Schema.Literal(...selections)),
  primaryReads: Schema.optional(Schema.Literal(...primaryReadModes)),
  connectTimeout: Schema.optional(PositiveDuration),
  idleTimeout: Schema.optional(PositiveDuration),
  readTimeout: Schema.optional(PositiveDuration),
  hedgeAfter: Schema.optional(PositiveDuration),
  applicationName: Schema.optional(Schema.String),
  sideEffectFunctions: Schema.optional(Schema.Union(Schema.Literal("catalog"), Schema.Array(Schema.String))),
  health: Schema.optional(Health),
  maxLag: Schema.optional(MaxLag),
  consistency: Schema.optional(Consistency),
  cdc: Schema.optional(CdcSchema.Config)
})

// -----------------------------------------------------------------------------
// Errors: the reason is chosen by the field's path, never taken from Schema
// (whose default messages quote the value, and a value may be a password).
// -----------------------------------------------------------------------------

const positive = "must be a positive, finite duration (e.g. \"5 seconds\", or a number of milliseconds)"
const objectOf = (fields: Record<string, unknown>) => `must be an object with any of ${Object.keys(fields).join(", ")}`

/** The options of each object of the configuration. @internal */
export const optionsAt: Record<string, ReadonlyArray<string>> = {
  "": [...Object.keys(Json.fields), "validate"],
  health: Object.keys(Health.fields),
  maxLag: Object.keys(MaxLag.fields),
  consistency: Object.keys(Consistency.fields)
}

/** What each field must be, by its path (array elements as `[]`). @internal */
export const reasons: Record<string, string> = {
  "": "must be an object",
  primary: ConnectionString.expected,
  discovery: oneOf(discoveries),
  hosts: "must be an array of connection strings",
  "hosts[]": ConnectionString.expected,
  primaryMaxSize: "must be a whole number from 1 to 10000",
  replicas: "must be an array of connection strings",
  "replicas[]": ConnectionString.expected,
  replicaMaxSizeEach: "must be a whole number from 1 to 10000",
  selection: oneOf(selections),
  primaryReads: oneOf(primaryReadModes),
  validate: "must be a function (connection) => Promise<boolean>",
  connectTimeout: positive,
  idleTimeout: positive,
  readTimeout: positive,
  hedgeAfter: positive,
  applicationName: "must be a string",
  sideEffectFunctions: "must be an array of function names, or \"catalog\"",
  health: objectOf(Health.fields),
  "health.interval": positive,
  "health.timeout": positive,
  "health.failureThreshold": "must be a whole number of at least 1",
  "health.successThreshold": "must be a whole number of at least 1",
  "health.enabled": "must be true or false",
  "health.clock": oneOf(["live", "ambient"]),
  "health.slowStart": positive,
  maxLag: objectOf(MaxLag.fields),
  "maxLag.time": positive,
  "maxLag.bytes": "must be a whole number of bytes, 0 or more",
  consistency: objectOf(Consistency.fields),
  "consistency.maxWait": "must be a finite duration of 0 or more (e.g. \"50 millis\")",
  "consistency.onNotCaughtUp": oneOf(notCaughtUpPolicies),
  "consistency.stickyPrimaryAfterWrite": positive,
  "consistency.afterSchemaChange": "must be a finite duration of 0 or more (e.g. \"1 second\"; 0 turns it off)",
  "consistency.tokenSecret": "must be a secret of at least 16 characters",
  cdc: "must be an object { rules: [...] } of CDC rules (see Cdc.Rule)"
}

const urlFields = new Set(["primary", "hosts[]", "replicas[]"])

/** `replicas[1]`, `health.interval`; `config` for the whole. @internal */
export const pathOf = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>(
    (acc, key) => typeof key === "number" ? `${acc}[${key}]` : acc === "" ? String(key) : `${acc}.${String(key)}`,
    ""
  )

const valueAt = (input: unknown, path: ReadonlyArray<PropertyKey>): unknown =>
  path.reduce<unknown>(
    (value, key) => typeof value === "object" && value !== null ? (value as Record<PropertyKey, unknown>)[key] : undefined,
    input
  )

/** Which side of the Schema a value was checked against. */
type Side = "type" | "json"

const urlReason = (value: unknown, side: Side): string => {
  const text = side === "json" ? value : Redacted.isRedacted(value) ? Redacted.value(value) : undefined
  if (typeof text !== "string") {
    return side === "json"
      ? ConnectionString.expected
      : "must be a Redacted PostgreSQL connection string (Redacted.make(\"postgres://...\"))"
  }
  return Either.match(ConnectionString.parseTarget(text), { onLeft: (reason) => reason, onRight: () => "is invalid" })
}

const invalid = (path: ReadonlyArray<PropertyKey>, reason: string) =>
  new InvalidConfig({ field: pathOf(path) || "config", reason })

/** An InvalidConfig for the first issue of a failed decode or encode. @internal */
export const fromParseError = (input: unknown, side: Side) => (error: ParseResult.ParseError): InvalidConfig => {
  const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
  const path = issue?.path ?? []
  const key = pathOf(path).replace(/\[\d+\]/g, "[]")
  if (issue?._tag === "Unexpected") {
    const parent = path.slice(0, -1)
    // A function has no JSON form: `validate` is an option of the type side only.
    const known = (optionsAt[pathOf(parent)] ?? []).filter((option) => side === "type" || option !== "validate")
    const name = path[path.length - 1]
    // An unknown key is named only when it looks like a name, not a value put in the wrong place.
    return typeof name === "string" && /^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(name)
      ? invalid(path, `is not a known option; the options here are ${known.join(", ")}`)
      : invalid(parent, `has an option that is not known; the options here are ${known.join(", ")}`)
  }
  if (urlFields.has(key)) return invalid(path, urlReason(valueAt(input, path), side))
  return invalid(path, reasons[key] ?? "is invalid")
}

// -----------------------------------------------------------------------------
// resolve
// -----------------------------------------------------------------------------

const decodeInput = Schema.decodeUnknownEither(Schema.typeSchema(Json), { errors: "first", onExcessProperty: "error" })

const duration = (input: Duration.DurationInput | undefined, fallback: Duration.DurationInput): Duration.Duration =>
  Duration.decode(input ?? fallback)

/** @internal */
export const resolve = (config: RouterConfig): Effect.Effect<Resolved, InvalidConfig> =>
  Effect.suspend(() => {
    if (typeof config !== "object" || config === null || Array.isArray(config)) {
      return Effect.fail(invalid([], reasons[""]!))
    }
    const { validate, ...rest } = config
    if (validate !== undefined && typeof validate !== "function") {
      return Effect.fail(invalid(["validate"], reasons["validate"]!))
    }
    const result = decodeInput(rest)
    if (Either.isLeft(result)) return Effect.fail(fromParseError(rest, "type")(result.left))
    const input = result.right
    const health = input.health ?? {}
    const discovery = input.discovery ?? "manual"
    const hosts = discovery === "auto"
      ? input.hosts ?? (input.primary ? [input.primary, ...(input.replicas ?? [])] : [])
      : []
    if (discovery === "manual" && input.primary === undefined) {
      return Effect.fail(
        new InvalidConfig({
          field: "primary",
          reason: input.hosts ? "is required (or set discovery: \"auto\" to use hosts)" : "is required"
        })
      )
    }
    if (discovery === "auto" && hosts.length === 0) {
      return Effect.fail(new InvalidConfig({ field: "hosts", reason: "must list at least one server" }))
    }
    if (discovery === "auto" && input.hosts && (input.primary || input.replicas)) {
      return Effect.fail(new InvalidConfig({ field: "hosts", reason: "cannot be combined with primary/replicas" }))
    }
    return Effect.succeed<Resolved>({
      discovery,
      primary: discovery === "auto" ? hosts[0]! : input.primary!,
      primaryMaxSize: input.primaryMaxSize ?? 10,
      replicas: discovery === "auto" ? hosts.slice(1) : input.replicas ?? [],
      replicaMaxSizeEach: input.replicaMaxSizeEach ?? 10,
      selection: input.selection ?? "round-robin",
      primaryReads: input.primaryReads ?? "fallback",
      validate,
      connectTimeout: duration(input.connectTimeout, "5 seconds"),
      idleTimeout: duration(input.idleTimeout, "30 seconds"),
      applicationName: input.applicationName ?? "effect-sql-router",
      readTimeout: input.readTimeout === undefined ? undefined : duration(input.readTimeout, 0),
      hedgeAfter: input.hedgeAfter === undefined ? undefined : duration(input.hedgeAfter, 0),
      sideEffectFunctions: input.sideEffectFunctions === "catalog" ? [] : input.sideEffectFunctions ?? [],
      sideEffectCatalog: input.sideEffectFunctions === "catalog",
      health: {
        interval: duration(health.interval, "1 second"),
        timeout: duration(health.timeout, "1 second"),
        failureThreshold: health.failureThreshold ?? 1,
        successThreshold: health.successThreshold ?? 2,
        enabled: health.enabled ?? true,
        clock: health.clock ?? "live",
        slowStart: health.slowStart === undefined ? undefined : duration(health.slowStart, 0)
      },
      maxLag: {
        time: input.maxLag?.time === undefined ? undefined : duration(input.maxLag.time, 0),
        bytes: input.maxLag?.bytes
      },
      consistency: {
        maxWait: duration(input.consistency?.maxWait, 0),
        onNotCaughtUp: input.consistency?.onNotCaughtUp ?? "primary",
        stickyPrimaryAfterWrite: input.consistency?.stickyPrimaryAfterWrite === undefined
          ? undefined
          : duration(input.consistency.stickyPrimaryAfterWrite, 0),
        afterSchemaChange: duration(input.consistency?.afterSchemaChange, 1000),
        tokenSecret: input.consistency?.tokenSecret ?? Redacted.make(Crypto.randomBytes(32).toString("base64url"))
      }
    })
  })

// -----------------------------------------------------------------------------
// The environment
// -----------------------------------------------------------------------------

/** @internal */
export const splitUrls = (list: string): ReadonlyArray<Redacted.Redacted<string>> =>
  list.split(",").map((s) => s.trim()).filter((s) => s.length > 0).map((s) => Redacted.make(s))

// Config's own primitives quote the value they reject; these say what is allowed.

/** @internal */
export const envEnum = <const A extends ReadonlyArray<string>>(name: string, values: A): Config.Config<A[number]> =>
  Config.string(name).pipe(
    Config.mapOrFail((text) =>
      values.includes(text)
        ? Either.right(text as A[number])
        : Either.left(ConfigError.InvalidData([], oneOf(values)))
    )
  )

/** @internal */
export const envPoolSize = (name: string): Config.Config<number> =>
  Config.string(name).pipe(
    Config.mapOrFail((text) => {
      const n = Number(text.trim())
      return /^\s*\d+\s*$/.test(text) && n >= 1 && n <= 10_000
        ? Either.right(n)
        : Either.left(ConfigError.InvalidData([], reasons["primaryMaxSize"]!))
    })
  )

const checkUrl = (text: string) =>
  Either.mapLeft(ConnectionString.parseTarget(text), (reason) => ConfigError.InvalidData([], reason))

/** @internal */
export const envUrl = (name: string): Config.Config<Redacted.Redacted<string>> =>
  Config.string(name).pipe(Config.mapOrFail((text) => Either.map(checkUrl(text), () => Redacted.make(text))))

/** @internal */
export const envUrls = (name: string): Config.Config<ReadonlyArray<Redacted.Redacted<string>>> =>
  Config.string(name).pipe(
    Config.mapOrFail((list) => {
      const urls = splitUrls(list)
      for (const [i, url] of urls.entries()) {
        const checked = checkUrl(Redacted.value(url))
        if (Either.isLeft(checked)) {
          return Either.left(ConfigError.InvalidData([], `entry ${i + 1}: ${checked.left.message}`))
        }
      }
      return Either.right(urls)
    }),
    Config.withDefault<ReadonlyArray<Redacted.Redacted<string>>>([])
  )

/** @internal */
export const fromEnv: Config.Config<RouterConfig> = Config.all({
  primary: envUrl("DATABASE_URL"),
  replicas: envUrls("DATABASE_REPLICA_URLS"),
  discovery: envEnum("DATABASE_DISCOVERY", discoveries).pipe(Config.withDefault("manual" as const)),
  selection: envEnum("DATABASE_REPLICA_SELECTION", selections).pipe(Config.withDefault("round-robin" as const)),
  primaryReads: envEnum("DATABASE_PRIMARY_READS", primaryReadModes).pipe(Config.withDefault("fallback" as const)),
  primaryMaxSize: envPoolSize("DATABASE_POOL_SIZE").pipe(Config.withDefault(10)),
  replicaMaxSizeEach: envPoolSize("DATABASE_REPLICA_POOL_SIZE").pipe(Config.withDefault(10))
})

// -----------------------------------------------------------------------------
// JSON persistence
// -----------------------------------------------------------------------------

const scrubUrl = (field: ReadonlyArray<PropertyKey>, url: Redacted.Redacted<string>) =>
  !Redacted.isRedacted(url)
    ? Effect.fail(invalid(field, urlReason(url, "type")))
    : Either.match(ConnectionString.withoutPassword(Redacted.value(url)), {
      onLeft: () => Effect.fail(invalid(field, urlReason(url, "type"))),
      onRight: (text) => Effect.succeed(Redacted.make(text))
    })

const scrubUrls = (field: string, urls: ReadonlyArray<Redacted.Redacted<string>> | undefined) =>
  urls === undefined || !Array.isArray(urls)
    ? Effect.succeed(urls)
    : Effect.forEach(urls, (url, i) => scrubUrl([field, i], url))

/** The configuration without passwords (in URLs) and without the token secret. */
const withoutSecrets = (config: RouterConfig): Effect.Effect<RouterConfig, InvalidConfig> =>
  Effect.gen(function*() {
    const { tokenSecret: _, ...consistency } = config.consistency ?? {}
    return {
      ...config,
      primary: config.primary === undefined ? undefined : yield* scrubUrl(["primary"], config.primary),
      hosts: yield* scrubUrls("hosts", config.hosts),
      replicas: yield* scrubUrls("replicas", config.replicas),
      consistency: config.consistency === undefined ? undefined : consistency
    }
  })

const encodeJson = Schema.encodeEither(Json, { errors: "first" })
const decodeJson = Schema.decodeUnknownEither(Json, { errors: "first", onExcessProperty: "error" })

/** @internal */
export const toJson = (
  config: RouterConfig,
  options: { readonly includeSecrets?: boolean | undefined } = {}
): Effect.Effect<typeof Json.Encoded, InvalidConfig> =>
  Effect.flatMap(
    options.includeSecrets ? Effect.succeed(config) : withoutSecrets(config),
    (input) => Either.mapLeft(encodeJson(input), fromParseError(input, "type"))
  )

/** @internal */
export const fromJson = (json: unknown): Effect.Effect<RouterConfig, InvalidConfig> =>
  Effect.suspend(() => {
    const decoded = decodeJson(json)
    if (Either.isLeft(decoded)) return Effect.fail(fromParseError(json, "json")(decoded.left))
    return Effect.as(resolve(decoded.right), decoded.right)
  })

const decodeText = Schema.decodeEither(Schema.parseJson())

/** @internal */
export const load = (
  path: string
): Effect.Effect<RouterConfig, InvalidConfig | PlatformError.PlatformError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const text = yield* fs.readFileString(path)
    // JSON.parse's message quotes the text around the error: not shown.
    const json = yield* Either.mapLeft(
      decodeText(text),
      () => new InvalidConfig({ field: "file", reason: `${path} is not valid JSON` })
    )
    return yield* fromJson(json)
  })

/** @internal */
export const save = (
  config: RouterConfig,
  path: string,
  options: { readonly includeSecrets?: boolean | undefined } = {}
): Effect.Effect<void, InvalidConfig | PlatformError.PlatformError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const json = yield* toJson(config, options)
    const fs = yield* FileSystem.FileSystem
    // Written whole, then renamed: a crash never leaves half a file.
    const staging = `${path}.${Crypto.randomBytes(6).toString("hex")}.tmp`
    yield* fs.writeFileString(staging, JSON.stringify(json, null, 2) + "\n", { mode: 0o600 }).pipe(
      Effect.zipRight(fs.rename(staging, path)),
      Effect.onError(() => Effect.ignore(fs.remove(staging)))
    )
  })

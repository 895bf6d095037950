/** @internal */
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
import * as Fs from "node:fs"
import { redactUrls } from "./errors.js"
import { isPostgresUrl } from "./node.js"

// Messages are written here, never taken from Schema's defaults: those quote
// the offending value, and a URL may hold a password.


const Url = Schema.RedactedFromSelf(Schema.String).annotations({
  message: () => "must be a Redacted URL (Redacted.make(\"postgres://...\"))"
}).pipe(
  Schema.filter((value) => isPostgresUrl(Redacted.value(value)), {
    message: () => "must be a URL of the form postgres://user:password@host:port/database"
  })
)

const PoolSize = Schema.Number.pipe(
  Schema.filter((n) => Number.isInteger(n) && n >= 1 && n <= 10_000, {
    message: () => "must be a whole number from 1 to 10000"
  })
).annotations({ message: () => "must be a whole number from 1 to 10000" })

const Count = Schema.Number.pipe(
  Schema.filter((n) => Number.isInteger(n) && n >= 1, { message: () => "must be a whole number of at least 1" })
).annotations({ message: () => "must be a whole number of at least 1" })

const Bytes = Schema.Number.pipe(
  Schema.filter((n) => Number.isInteger(n) && n >= 0, { message: () => "must be a whole number of bytes, 0 or more" })
).annotations({ message: () => "must be a whole number of bytes, 0 or more" })

const PositiveDuration = Schema.Unknown.pipe(
  Schema.filter((u) => {
    const d = Duration.decodeUnknown(u)
    return Option.isSome(d) && Duration.greaterThan(d.value, Duration.zero) && Duration.isFinite(d.value)
  }, { message: () => "must be a positive, finite duration (e.g. \"5 seconds\" or a number of milliseconds)" })
)

const Selection = Schema.Literal("round-robin", "random", "least-connections", "least-lag").annotations({
  message: () => "must be one of round-robin, random, least-connections, least-lag"
})

const Fn = Schema.Unknown.pipe(
  Schema.filter((u) => typeof u === "function", { message: () => "must be a function" })
)

const Health = Schema.Struct({
  interval: Schema.optional(PositiveDuration),
  timeout: Schema.optional(PositiveDuration),
  failureThreshold: Schema.optional(Count),
  successThreshold: Schema.optional(Count),
  enabled: Schema.optional(Schema.Boolean.annotations({ message: () => "must be true or false" }))
})

const MaxLag = Schema.Struct({
  time: Schema.optional(PositiveDuration),
  bytes: Schema.optional(Bytes)
})

const NonNegativeDuration = Schema.Unknown.pipe(
  Schema.filter((u) => {
    const d = Duration.decodeUnknown(u)
    return Option.isSome(d) && Duration.isFinite(d.value)
  }, { message: () => "must be a finite duration of 0 or more (e.g. \"50 millis\")" })
)

const Secret = Schema.RedactedFromSelf(Schema.String).annotations({
  message: () => "must be a Redacted string"
}).pipe(
  Schema.filter((value) => Redacted.value(value).length >= 16, { message: () => "must be at least 16 characters" })
)

const Consistency = Schema.Struct({
  maxWait: Schema.optional(NonNegativeDuration),
  onNotCaughtUp: Schema.optional(
    Schema.Literal("primary", "fail").annotations({ message: () => "must be \"primary\" or \"fail\"" })
  ),
  stickyPrimaryAfterWrite: Schema.optional(PositiveDuration),
  tokenSecret: Schema.optional(Secret)
})

const Input = Schema.Struct({
  primary: Schema.optional(Url),
  discovery: Schema.optional(
    Schema.Literal("manual", "auto").annotations({ message: () => "must be \"manual\" or \"auto\"" })
  ),
  hosts: Schema.optional(Schema.Array(Url).annotations({ message: () => "must be an array of Redacted URLs" })),
  primaryMaxSize: Schema.optional(PoolSize),
  replicas: Schema.optional(Schema.Array(Url).annotations({ message: () => "must be an array of Redacted URLs" })),
  replicaMaxSizeEach: Schema.optional(PoolSize),
  selection: Schema.optional(Selection),
  validate: Schema.optional(Fn),
  connectTimeout: Schema.optional(PositiveDuration),
  idleTimeout: Schema.optional(PositiveDuration),
  readTimeout: Schema.optional(PositiveDuration),
  primaryReads: Schema.optional(
    Schema.Literal("fallback", "overflow").annotations({ message: () => "must be \"fallback\" or \"overflow\"" })
  ),
  applicationName: Schema.optional(Schema.String.annotations({ message: () => "must be a string" })),
  sideEffectFunctions: Schema.optional(
    Schema.Array(Schema.String).annotations({ message: () => "must be an array of function names" })
  ),
  health: Schema.optional(Health),
  maxLag: Schema.optional(MaxLag),
  consistency: Schema.optional(Consistency),
  cdc: Schema.optional(CdcSchema.Config)
}).annotations({ message: () => "must be an object" })

const decode = Schema.decodeUnknownEither(Input, { errors: "first", onExcessProperty: "error" })

const pathOf = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>(
    (acc, key) => typeof key === "number" ? `${acc}[${key}]` : acc === "" ? String(key) : `${acc}.${String(key)}`,
    ""
  ) || "config"

const duration = (input: unknown, fallback: Duration.DurationInput): Duration.Duration =>
  input === undefined ? Duration.decode(fallback) : Duration.decode(input as Duration.DurationInput)

/** @internal */
export const resolve = (config: RouterConfig): Effect.Effect<Resolved, InvalidConfig> =>
  Effect.suspend(() => {
    const result = decode(config)
    if (Either.isLeft(result)) {
      const issue = ParseResult.ArrayFormatter.formatErrorSync(result.left)[0]
      const isExcess = issue?._tag === "Unexpected"
      return Effect.fail(
        new InvalidConfig({
          field: pathOf(issue?.path ?? []),
          // Belt and braces: no message of ours quotes a URL, but never let one through.
          reason: isExcess ? "is not a known option" : redactUrls(issue?.message ?? "is invalid")
        })
      )
    }
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
      validate: config.validate,
      connectTimeout: duration(input.connectTimeout, "5 seconds"),
      idleTimeout: duration(input.idleTimeout, "30 seconds"),
      applicationName: input.applicationName ?? "effect-sql-router",
      readTimeout: input.readTimeout === undefined ? undefined : duration(input.readTimeout, 0),
      sideEffectFunctions: input.sideEffectFunctions ?? [],
      health: {
        interval: duration(health.interval, "1 second"),
        timeout: duration(health.timeout, "1 second"),
        failureThreshold: health.failureThreshold ?? 1,
        successThreshold: health.successThreshold ?? 2,
        enabled: health.enabled ?? true
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
        tokenSecret: input.consistency?.tokenSecret ?? Redacted.make(Crypto.randomBytes(32).toString("base64url"))
      }
    })
  })

/** @internal */
export const splitUrls = (list: string): ReadonlyArray<Redacted.Redacted<string>> =>
  list.split(",").map((s) => s.trim()).filter((s) => s.length > 0).map((s) => Redacted.make(s))

// -----------------------------------------------------------------------------
// JSON persistence
// -----------------------------------------------------------------------------

const stripPassword = (url: Redacted.Redacted<string>): string => {
  const parsed = new URL(Redacted.value(url))
  parsed.password = ""
  return parsed.toString()
}

const millis = (d: Duration.DurationInput | undefined): number | undefined =>
  d === undefined ? undefined : Duration.toMillis(Duration.decode(d))

const compact = (record: Record<string, unknown>): Record<string, unknown> | undefined => {
  const out = Object.fromEntries(Object.entries(record).filter(([, v]) => v !== undefined))
  return Object.keys(out).length === 0 ? undefined : out
}

/** @internal */
export const toJson = (config: RouterConfig, options: { readonly includeSecrets?: boolean | undefined } = {}) => {
  const url = (u: Redacted.Redacted<string>) => options.includeSecrets ? Redacted.value(u) : stripPassword(u)
  return compact({
    discovery: config.discovery,
    primary: config.primary && url(config.primary),
    hosts: config.hosts?.map(url),
    replicas: config.replicas?.map(url),
    primaryMaxSize: config.primaryMaxSize,
    replicaMaxSizeEach: config.replicaMaxSizeEach,
    selection: config.selection,
    primaryReads: config.primaryReads,
    connectTimeout: millis(config.connectTimeout),
    idleTimeout: millis(config.idleTimeout),
    readTimeout: millis(config.readTimeout),
    applicationName: config.applicationName,
    sideEffectFunctions: config.sideEffectFunctions,
    health: config.health && compact({
      interval: millis(config.health.interval),
      timeout: millis(config.health.timeout),
      failureThreshold: config.health.failureThreshold,
      successThreshold: config.health.successThreshold,
      enabled: config.health.enabled
    }),
    maxLag: config.maxLag && compact({ time: millis(config.maxLag.time), bytes: config.maxLag.bytes }),
    consistency: config.consistency && compact({
      maxWait: millis(config.consistency.maxWait),
      onNotCaughtUp: config.consistency.onNotCaughtUp,
      stickyPrimaryAfterWrite: millis(config.consistency.stickyPrimaryAfterWrite),
      tokenSecret: options.includeSecrets && config.consistency.tokenSecret
        ? Redacted.value(config.consistency.tokenSecret)
        : undefined
    }),
    cdc: config.cdc
  })
}

const redactString = (field: string, value: unknown): Effect.Effect<Redacted.Redacted<string> | undefined, InvalidConfig> =>
  value === undefined
    ? Effect.succeed(undefined)
    : typeof value === "string"
    ? Effect.succeed(Redacted.make(value))
    : Effect.fail(new InvalidConfig({ field, reason: "must be a string" }))

const redactList = (field: string, value: unknown) =>
  value === undefined
    ? Effect.succeed(undefined)
    : Array.isArray(value)
    ? Effect.forEach(value, (item, i) =>
      Effect.flatMap(redactString(`${field}[${i}]`, item), (r) =>
        r === undefined ? Effect.fail(new InvalidConfig({ field: `${field}[${i}]`, reason: "must be a string" })) : Effect.succeed(r)))
    : Effect.fail(new InvalidConfig({ field, reason: "must be an array of URLs" }))

/** @internal */
export const fromJson = (json: unknown): Effect.Effect<RouterConfig, InvalidConfig> =>
  Effect.gen(function*() {
    if (typeof json !== "object" || json === null || Array.isArray(json)) {
      return yield* new InvalidConfig({ field: "config", reason: "must be a JSON object" })
    }
    const raw = json as Record<string, unknown>
    const consistency = raw["consistency"]
    const secret = typeof consistency === "object" && consistency !== null
      ? (consistency as Record<string, unknown>)["tokenSecret"]
      : undefined
    const config = compact({
      ...raw,
      primary: yield* redactString("primary", raw["primary"]),
      replicas: yield* redactList("replicas", raw["replicas"]),
      hosts: yield* redactList("hosts", raw["hosts"]),
      consistency: typeof consistency === "object" && consistency !== null
        ? compact({
          ...(consistency as Record<string, unknown>),
          tokenSecret: yield* redactString("consistency.tokenSecret", secret)
        })
        : consistency
    }) as unknown as RouterConfig
    yield* resolve(config)
    return config
  })

/** @internal */
export const load = (path: string): Effect.Effect<RouterConfig, InvalidConfig> =>
  Effect.gen(function*() {
    const text = yield* Effect.try({
      try: () => Fs.readFileSync(path, "utf8"),
      catch: (cause) => new InvalidConfig({ field: "file", reason: `cannot read ${path}: ${(cause as Error).message}` })
    })
    const json = yield* Effect.try({
      try: () => JSON.parse(text) as unknown,
      catch: (cause) => new InvalidConfig({ field: "file", reason: `${path} is not JSON: ${(cause as Error).message}` })
    })
    return yield* fromJson(json)
  })

/** @internal */
export const save = (
  config: RouterConfig,
  path: string,
  options: { readonly includeSecrets?: boolean | undefined } = {}
): Effect.Effect<void, InvalidConfig> =>
  Effect.try({
    // Written whole, then renamed: a crash never leaves half a file.
    try: () => {
      const staging = `${path}.${process.pid}.tmp`
      Fs.writeFileSync(staging, JSON.stringify(toJson(config, options), null, 2) + "\n", { mode: 0o600 })
      Fs.renameSync(staging, path)
    },
    catch: (cause) => new InvalidConfig({ field: "file", reason: `cannot write ${path}: ${(cause as Error).message}` })
  })

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
import * as CdcSchema from "./cdc/schema.js"
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

/** A REST API base URL (`http://db1:8008`); it may hold credentials, so it is Redacted. @internal */
export const isRestUrl = (text: string): boolean => {
  try {
    const url = new URL(text)
    return (url.protocol === "http:" || url.protocol === "https:") && url.hostname !== ""
  } catch {
    return false
  }
}

const RestUrl = Schema.Redacted(Schema.String).pipe(Schema.filter((url) => isRestUrl(Redacted.value(url))))

const restUrl = "must be a Redacted http:// or https:// URL of a Patroni REST API (e.g. http://db1:8008)"

const Secret = Schema.Redacted(Schema.String).pipe(Schema.filter((secret) => Redacted.value(secret).length >= 16))

// -----------------------------------------------------------------------------
// One declaration per option: its Schema (the type side is what users write,
// the encoded side the JSON that `save` writes and `load` reads), what it must
// be (the reason an InvalidConfig gives: chosen by the option, never taken
// from Schema, whose messages quote the value, and a value may be a password),
// and how it resolves (its default). The Schema of the whole, the public input
// and resolved types, the reasons and the defaults all derive from the tables
// below, and each option's JSDoc there is the one users read.
// -----------------------------------------------------------------------------

/** @internal */
export interface Setting<S extends Schema.Schema.All, R> {
  readonly schema: S
  /** What the option must be. */
  readonly reason: string
  /** What each element must be, for an array. */
  readonly elements?: string | undefined
  /** The resolved value: the input, or the default. */
  readonly resolve: (input: Schema.Schema.Type<S> | undefined) => R
  /** For an object of options: its options. */
  readonly options?: Settings | undefined
}

/** @internal */
export type Settings = { readonly [name: string]: Setting<any, unknown> }

const option = <S extends Schema.Schema.All, R>(
  schema: S,
  reason: string,
  resolve: (input: Schema.Schema.Type<S> | undefined) => R,
  elements?: string
): Setting<S, R> => ({ schema, reason, resolve, elements })

type StructOf<O extends Settings> = Schema.Struct<{ readonly [K in keyof O]: Schema.optional<O[K]["schema"]> }>

type ResolvedAt<O extends Settings, K extends keyof O> = ReturnType<O[K]["resolve"]>

/** The options of an object, resolved one by one; an option with no default stays optional. @internal */
export type ResolvedOf<O extends Settings> =
  & { readonly [K in keyof O as undefined extends ResolvedAt<O, K> ? never : K]: ResolvedAt<O, K> }
  & { readonly [K in keyof O as undefined extends ResolvedAt<O, K> ? K : never]?: ResolvedAt<O, K> }

const structOf = <O extends Settings>(options: O): StructOf<O> =>
  Schema.Struct(
    Object.fromEntries(Object.entries(options).map(([name, option]) => [name, Schema.optional(option.schema)]))
  ) as unknown as StructOf<O>

const resolveAll = <O extends Settings>(options: O, input: Readonly<Record<string, unknown>>): ResolvedOf<O> =>
  Object.fromEntries(
    Object.entries(options).map(([name, option]) => [name, option.resolve(input[name])])
  ) as ResolvedOf<O>

const objectOf = (options: Settings) => `must be an object with any of ${Object.keys(options).join(", ")}`

/** An object of options: an absent one resolves to every default. */
const group = <O extends Settings>(options: O): Setting<StructOf<O>, ResolvedOf<O>> => ({
  schema: structOf(options),
  reason: objectOf(options),
  resolve: (input) => resolveAll(options, (input ?? {}) as Readonly<Record<string, unknown>>),
  options
})

/** An optional object of options: absent, it stays absent (the feature is off). */
const optionalGroup = <O extends Settings>(options: O): Setting<StructOf<O>, ResolvedOf<O> | undefined> => ({
  schema: structOf(options),
  reason: objectOf(options),
  resolve: (input) =>
    input === undefined ? undefined : resolveAll(options, input as Readonly<Record<string, unknown>>),
  options
})

const positive = "must be a positive, finite duration (e.g. \"5 seconds\", or a number of milliseconds)"
const durationOr = (fallback: Duration.DurationInput) => (input: Duration.DurationInput | undefined) =>
  Duration.decode(input ?? fallback)
const durationIfSet = (input: Duration.DurationInput | undefined) =>
  input === undefined ? undefined : Duration.decode(input)
const asGiven = <A>(input: A | undefined): A | undefined => input
const poolSize = "must be a whole number from 1 to 10000"

const healthOptions = {
  /** Time between probes of each node; default 1 second. */
  interval: option(PositiveDuration, positive, durationOr("1 second")),
  /**
   * The longest delay between looks at a calm node: a node with no traffic
   * and nothing new is looked at after `interval`, then twice as long each
   * time up to this; anything unusual brings it back to `interval`. Default
   * 15 seconds (or `interval`, if longer); equal to `interval`: a fixed
   * cadence. Not below `interval`.
   */
  maxInterval: option(PositiveDuration, positive, durationIfSet),
  /**
   * A replica the primary reports streaming, whose last reply to the primary
   * is older than this, is probed directly (a frozen standby keeps its row
   * until `wal_sender_timeout`). Standbys reply every
   * `wal_receiver_status_interval` (10 s by default); default 25 seconds.
   */
  replyTimeout: option(PositiveDuration, positive, durationOr("25 seconds")),
  /** A probe that takes longer fails; default 1 second. */
  timeout: option(PositiveDuration, positive, durationOr("1 second")),
  /** Default 1: a dead replica should cost no reads. */
  failureThreshold: option(wholeNumber(1), "must be a whole number of at least 1", (input) => input ?? 1),
  /** Default 2. */
  successThreshold: option(wholeNumber(1), "must be a whole number of at least 1", (input) => input ?? 2),
  /** Set false to run no background probes (tests, or health driven by hand); default true. */
  enabled: option(Schema.Boolean, "must be true or false", (input) => input ?? true),
  /**
   * The clock the probe schedule runs on. `"live"` (default): real time, also
   * under `TestClock`, so an `it.effect` test against a real cluster sees
   * health change. `"ambient"`: the fiber's clock, for unit tests with stubbed
   * probes driven by `TestClock.adjust` (a real probe's I/O does not wait for
   * `TestClock`). Probe timeouts are always real time.
   */
  clock: option(Schema.Literal("live", "ambient"), oneOf(["live", "ambient"]), (input) => input ?? "live"),
  /**
   * Slow start: a replica that returns to rotation after a failure (probes,
   * or `markReplicaHealthy` after a mark) gets a share of reads that grows
   * linearly from none to its full share over this time, instead of all at
   * once (a cold cache, a replica catching up). Default: off.
   */
  slowStart: option(PositiveDuration, positive, durationIfSet)
}

const patroniOptions = {
  /**
   * The members' REST API base URLs (`http://db1:8008`, credentials
   * allowed), asked in turn for `GET /cluster`: the first that answers is
   * used. Required.
   */
  urls: option(
    Schema.Array(RestUrl).pipe(Schema.minItems(1)),
    "must be a non-empty array of Patroni REST API URLs",
    asGiven,
    restUrl
  ),
  /** A request that takes longer fails, and the next URL is asked; default 1 second. */
  timeout: option(PositiveDuration, positive, durationOr("1 second"))
}
const defaultMaxInterval = Duration.seconds(15)

const maxLagOptions = {
  /** Replay delay behind the primary's latest commit. */
  time: option(PositiveDuration, positive, durationIfSet),
  /** WAL bytes not yet replayed. */
  bytes: option(wholeNumber(0), "must be a whole number of bytes, 0 or more", asGiven)
}

const consistencyOptions = {
  /**
   * How long a session's read may wait for a replica to replay the session's
   * last commit before the policy applies; default 0 (no waiting).
   */
  maxWait: option(
    NonNegativeDuration,
    "must be a finite duration of 0 or more (e.g. \"50 millis\")",
    durationOr(0)
  ),
  /** When no replica has caught up: read from the primary (default) or fail with `ReplicaNotCaughtUp`. */
  onNotCaughtUp: option(
    Schema.Literal(...notCaughtUpPolicies),
    oneOf(notCaughtUpPolicies),
    (input) => input ?? "primary"
  ),
  /**
   * The cheap mode: no LSNs; a session's reads go to the primary for this long
   * after its last write (Rails' approach).
   */
  stickyPrimaryAfterWrite: option(PositiveDuration, positive, durationIfSet),
  /**
   * For this long after the router routes a schema change, every write (in
   * any session, or none) moves the DDL barrier to its position, so that
   * reads right after it see it: `CREATE TABLE`, insert, select at once, as a
   * migration's or a test's setup does, without a causal session. Default 1
   * second; `0` turns it off (the barrier then only covers the schema change).
   */
  afterSchemaChange: option(
    NonNegativeDuration,
    "must be a finite duration of 0 or more (e.g. \"1 second\"; 0 turns it off)",
    durationOr(1000)
  ),
  /**
   * Key that signs causal tokens, shared by every process that exchanges
   * them. Default: a random key per router (tokens only valid in this process).
   */
  tokenSecret: option(
    Secret,
    "must be a secret of at least 16 characters",
    (input) => input ?? Redacted.make(Crypto.randomBytes(32).toString("base64url"))
  )
}

const directOptions = {
  /** The primary's own address, for LISTEN (`Durable`) and CDC when `primary` is a pooler. */
  primary: option(Url, ConnectionString.expected, asGiven),
  /** One per entry of `replicas`, in the same order. */
  replicas: option(Schema.Array(Url), "must be an array of connection strings", asGiven, ConnectionString.expected),
  /** With `discovery: "auto"` and `hosts`: one per entry of `hosts`, in the same order. */
  hosts: option(Schema.Array(Url), "must be an array of connection strings", asGiven, ConnectionString.expected)
}

/** How one role's pools keep their connections. */
const poolOptions = {
  /**
   * Connections each pool of this role keeps open once opened, even when
   * idle (`idleTimeout` closes none below it; they are opened on demand, not
   * ahead); default 0 (a pool shrinks to nothing). At most the role's pool
   * size (`primaryMaxSize`, `replicaMaxSizeEach`).
   */
  minConnections: option(
    wholeNumber(0),
    "must be a whole number, 0 or more, not above the role's pool size",
    (input) => input ?? 0
  )
}

/** Every option of the router but `validate` (a function has no JSON form). @internal */
export const routerOptions = {
  /**
   * URL of the primary (`postgres://user:password@host:port/db`). Required
   * unless `discovery` is `auto` and `hosts` is given.
   */
  primary: option(Url, ConnectionString.expected, asGiven),
  /**
   * `manual` (default): `primary` is the primary. `auto`: every host
   * (`hosts`, or `primary` and `replicas`) is asked `pg_is_in_recovery()` at
   * start and on every probe; the one that accepts writes is the primary, so
   * the router follows an external failover.
   */
  discovery: option(Schema.Literal(...discoveries), oneOf(discoveries), (input) => input ?? "manual"),
  /** With `discovery: "auto"`: the servers, in any order. */
  hosts: option(Schema.Array(Url), "must be an array of connection strings", asGiven, ConnectionString.expected),
  /** Default 10. */
  primaryMaxSize: option(PoolSize, poolSize, (input) => input ?? 10),
  /** URLs of the replicas; empty or absent: every query goes to the primary. */
  replicas: option(Schema.Array(Url), "must be an array of connection strings", asGiven, ConnectionString.expected),
  /** Default 10. */
  replicaMaxSizeEach: option(PoolSize, poolSize, (input) => input ?? 10),
  /** How the primary's pool keeps its connections: `minConnections`. */
  primaryPool: group(poolOptions),
  /** How each replica's pool keeps its connections: `minConnections`. */
  replicaPool: group(poolOptions),
  /**
   * Direct URLs of the same servers, for what a transaction-mode pooler
   * (PgBouncer) in front of them cannot carry: the LISTEN session of
   * `Durable` and CDC's replication and snapshot connections use the node's
   * direct URL when it is set; statements and transactions keep the pooled
   * `primary`/`replicas`/`hosts` URL. Each list, when given, has one URL per
   * entry of its counterpart, in the same order.
   */
  direct: group(directOptions),
  /**
   * How `withRead` picks among eligible replicas (default `round-robin`).
   * `least-lag` prefers the replica that has replayed the most WAL (see the
   * health monitor).
   */
  selection: option(Schema.Literal(...selections), oneOf(selections), (input) => input ?? "round-robin"),
  /**
   * `fallback` (default): the primary serves reads only when no replica is
   * eligible. `overflow`: also when the chosen replica's pool is busy (no idle
   * connection, no room for another) and the primary's is not, so a burst of
   * reads uses the primary's spare connections instead of queueing. Writes
   * keep priority only as far as the primary's pool size allows.
   */
  primaryReads: option(Schema.Literal(...primaryReadModes), oneOf(primaryReadModes), (input) => input ?? "fallback"),
  /** Time to open a connection or wait for a free one; default 5 seconds. */
  connectTimeout: option(PositiveDuration, positive, durationOr("5 seconds")),
  /** Idle connections are closed after this; default 30 seconds. */
  idleTimeout: option(PositiveDuration, positive, durationOr("30 seconds")),
  /**
   * A routed read that a replica has not answered within this time is given
   * up there: the replica leaves rotation (it may be frozen or partitioned)
   * and the read runs once more elsewhere. No default: set it above your
   * slowest legitimate replica read.
   */
  readTimeout: option(PositiveDuration, positive, durationIfSet),
  /**
   * Hedged reads (default off): a routed read that its replica has not
   * answered within this time also starts on another replica eligible for it
   * (same session position, staleness bound and DDL barrier; the one with the
   * fewest reads in flight; never the primary). The first answer wins and the
   * other statement is cancelled on the server. A read with no other replica
   * to go to is not hedged. Writes, transactions, regions and streams are
   * never hedged. Set it above your usual read time: each hedge runs the read
   * twice. Off, it costs the read path nothing. Keep the health probes on: a
   * replica that stops answering then leaves rotation by its probes (or a
   * connection error), not by `readTimeout`, as the hedge answers first and
   * the slow statement is cancelled before its timeout.
   */
  hedgeAfter: option(PositiveDuration, positive, durationIfSet),
  /** `application_name` of our connections; default `effect-sql-router`. */
  applicationName: option(Schema.String, "must be a string", (input) => input ?? "effect-sql-router"),
  /**
   * Function names (beyond the built-in list) whose call makes a statement a
   * write; or `"catalog"`: the routed client reads `pg_proc` on the primary at
   * start and after every schema change it routes, and treats a call of any
   * `VOLATILE` function outside `pg_catalog` and `information_schema` as a
   * write (the check stays one set lookup per called name, and only for a
   * text not yet classified).
   */
  sideEffectFunctions: option(
    Schema.Union(Schema.Literal("catalog"), Schema.Array(Schema.String)),
    "must be an array of function names, or \"catalog\"",
    asGiven
  ),
  /**
   * Health probing and hysteresis. A replica leaves rotation after
   * `failureThreshold` consecutive failed probes and returns after
   * `successThreshold` consecutive good ones.
   */
  health: group(healthOptions),
  /**
   * Patroni as the source of truth (with `discovery: "auto"`): once per
   * health interval the router asks one member's REST API for `GET /cluster`;
   * while one answers, the leader it names is the primary, and replicas it
   * reports streaming take their health and lag from it (no PostgreSQL
   * probe). When none answers, PostgreSQL probes and discovery decide.
   */
  patroni: optionalGroup(patroniOptions),
  /** Replicas further behind than this get no reads (the seed's `lagTolerance`). */
  maxLag: group(maxLagOptions),
  /** Read-your-writes settings for causal sessions (see `Consistency`). */
  consistency: group(consistencyOptions),
  /** CDC rules (see `Cdc`), saved and loaded with the rest. */
  cdc: option(CdcSchema.Config, "must be an object { rules: [...] } of CDC rules (see Cdc.Rule)", asGiven)
}

/** Every option except `validate`: users' side as its type, the JSON form as its encoded side. @internal */
export const Json = structOf(routerOptions)

/** What users write, but `validate`. @internal */
export type Input = Schema.Schema.Type<typeof Json>

/** The options resolved one by one (before the ones that depend on each other). @internal */
export type ResolvedOptions = ResolvedOf<typeof routerOptions>

/** The options of each object of the configuration, by its path. @internal */
export const optionsAt: Record<string, ReadonlyArray<string>> = (() => {
  const at: Record<string, ReadonlyArray<string>> = { "": [...Object.keys(routerOptions), "validate"] }
  for (const [name, option] of Object.entries(routerOptions as Settings)) {
    if (option.options) at[name] = Object.keys(option.options)
  }
  return at
})()

/** What each field must be, by its path (array elements as `[]`), derived from the options. @internal */
export const reasons: Record<string, string> = (() => {
  const out: Record<string, string> = {
    "": "must be an object",
    validate: "must be a function (connection) => Promise<boolean>"
  }
  const visit = (prefix: string, options: Settings) => {
    for (const [name, option] of Object.entries(options)) {
      const path = prefix === "" ? name : `${prefix}.${name}`
      out[path] = option.reason
      if (option.elements) out[`${path}[]`] = option.elements
      if (option.options) visit(path, option.options)
    }
  }
  visit("", routerOptions)
  return out
})()

// -----------------------------------------------------------------------------
// Errors: the reason of the field at the failing path
// -----------------------------------------------------------------------------

const urlFields = new Set(["primary", "hosts[]", "replicas[]", "direct.primary", "direct.replicas[]", "direct.hosts[]"])

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

/**
 * The direct URLs aligned with the resolved `primary` and `replicas` (with
 * `hosts`, its first entry stands for the primary, as `hosts[0]` does), each
 * list as long as its counterpart.
 */
const resolveDirect = (
  direct: ResolvedOf<typeof directOptions>,
  given: {
    readonly hosts: ReadonlyArray<Redacted.Redacted<string>> | undefined
    readonly replicas: ReadonlyArray<Redacted.Redacted<string>> | undefined
  }
): Resolved["direct"] | InvalidConfig => {
  const sameLength = (field: string, list: ReadonlyArray<unknown> | undefined, of: string, length: number) =>
    list !== undefined && list.length !== length
      ? new InvalidConfig({ field, reason: `must have one URL per entry of ${of} (${length}), in the same order` })
      : undefined
  if (direct.hosts !== undefined) {
    if (given.hosts === undefined) return new InvalidConfig({ field: "direct.hosts", reason: "needs hosts" })
    if (direct.primary !== undefined || direct.replicas !== undefined) {
      return new InvalidConfig({ field: "direct", reason: "with hosts, give direct.hosts only" })
    }
    return sameLength("direct.hosts", direct.hosts, "hosts", given.hosts.length) ??
      { primary: direct.hosts[0], replicas: direct.hosts.slice(1) }
  }
  if (given.hosts !== undefined && (direct.primary !== undefined || direct.replicas !== undefined)) {
    return new InvalidConfig({ field: "direct", reason: "with hosts, give direct.hosts (one per host) instead" })
  }
  return sameLength("direct.replicas", direct.replicas, "replicas", given.replicas?.length ?? 0) ??
    { primary: direct.primary, replicas: direct.replicas ?? [] }
}

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
    const { cdc: _, hosts: given, patroni, sideEffectFunctions, ...options } = resolveAll(routerOptions, result.right)
    // The options that depend on each other: who the servers are.
    const discovery = options.discovery
    const hosts = discovery === "auto"
      ? given ?? (options.primary ? [options.primary, ...(options.replicas ?? [])] : [])
      : []
    if (discovery === "manual" && options.primary === undefined) {
      return Effect.fail(
        new InvalidConfig({
          field: "primary",
          reason: given ? "is required (or set discovery: \"auto\" to use hosts)" : "is required"
        })
      )
    }
    if (discovery === "auto" && hosts.length === 0) {
      return Effect.fail(new InvalidConfig({ field: "hosts", reason: "must list at least one server" }))
    }
    if (discovery === "auto" && given && (options.primary || options.replicas)) {
      return Effect.fail(new InvalidConfig({ field: "hosts", reason: "cannot be combined with primary/replicas" }))
    }
    if (patroni !== undefined && discovery !== "auto") {
      return Effect.fail(
        new InvalidConfig({ field: "patroni", reason: "requires discovery: \"auto\" (Patroni names the primary among the hosts)" })
      )
    }
    if (patroni !== undefined && patroni.urls === undefined) {
      return Effect.fail(new InvalidConfig({ field: "patroni.urls", reason: "is required: the members' REST API URLs" }))
    }
    const direct = resolveDirect(options.direct, { hosts: given, replicas: options.replicas })
    if (direct instanceof InvalidConfig) return Effect.fail(direct)
    const { interval, maxInterval } = options.health
    if (maxInterval !== undefined && Duration.lessThan(maxInterval, interval)) {
      return Effect.fail(new InvalidConfig({ field: "health.maxInterval", reason: "must not be below health.interval" }))
    }
    if (options.primaryPool.minConnections > options.primaryMaxSize) {
      return Effect.fail(
        new InvalidConfig({ field: "primaryPool.minConnections", reason: "must not be above primaryMaxSize" })
      )
    }
    if (options.replicaPool.minConnections > options.replicaMaxSizeEach) {
      return Effect.fail(
        new InvalidConfig({ field: "replicaPool.minConnections", reason: "must not be above replicaMaxSizeEach" })
      )
    }
    return Effect.succeed<Resolved>({
      ...options,
      direct,
      patroni: patroni && { urls: patroni.urls!, timeout: patroni.timeout },
      health: { ...options.health, maxInterval: maxInterval ?? Duration.max(defaultMaxInterval, interval) },
      primary: discovery === "auto" ? hosts[0]! : options.primary!,
      replicas: discovery === "auto" ? hosts.slice(1) : options.replicas ?? [],
      validate,
      sideEffectFunctions: sideEffectFunctions === "catalog" ? [] : sideEffectFunctions ?? [],
      sideEffectCatalog: sideEffectFunctions === "catalog"
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

const scrubRestUrl = (i: number, url: Redacted.Redacted<string>) => {
  if (!Redacted.isRedacted(url) || !isRestUrl(Redacted.value(url))) {
    return Effect.fail(invalid(["patroni", "urls", i], restUrl))
  }
  const parsed = new URL(Redacted.value(url))
  parsed.password = ""
  return Effect.succeed(Redacted.make(parsed.toString()))
}

/** The configuration without passwords (in URLs) and without the token secret. */
const withoutSecrets = (config: RouterConfig): Effect.Effect<RouterConfig, InvalidConfig> =>
  Effect.gen(function*() {
    const { tokenSecret: _, ...consistency } = config.consistency ?? {}
    const direct = config.direct
    return {
      ...config,
      direct: direct === undefined || typeof direct !== "object" || direct === null ? direct : {
        ...direct,
        primary: direct.primary === undefined ? undefined : yield* scrubUrl(["direct", "primary"], direct.primary),
        replicas: yield* scrubUrls("direct.replicas", direct.replicas),
        hosts: yield* scrubUrls("direct.hosts", direct.hosts)
      },
      primary: config.primary === undefined ? undefined : yield* scrubUrl(["primary"], config.primary),
      hosts: yield* scrubUrls("hosts", config.hosts),
      replicas: yield* scrubUrls("replicas", config.replicas),
      patroni: config.patroni?.urls === undefined || !Array.isArray(config.patroni.urls)
        ? config.patroni
        : { ...config.patroni, urls: yield* Effect.forEach(config.patroni.urls, (url, i) => scrubRestUrl(i, url)) },
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

/** @internal */
import * as Duration from "effect/Duration"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Crypto from "node:crypto"
import * as CdcSchema from "../cdc/schema.js"
import * as ConnectionString from "../connectionString.js"
import {
  asGiven,
  discoveries,
  durationIfSet,
  durationOr,
  group,
  healthClocks,
  holds,
  NonNegativeDuration,
  notCaughtUpPolicies,
  oneOf,
  option,
  optionalGroup,
  PoolSize,
  poolSize,
  positive,
  PositiveDuration,
  primaryReadModes,
  type ResolvedOf,
  RestUrl,
  restUrl,
  Secret,
  selections,
  type Settings,
  structOf,
  trueOrFalse,
  Url,
  wholeNumber
} from "./fields.js"

// -----------------------------------------------------------------------------
// The options, one declaration each (see the field kit in ./fields.ts)
// -----------------------------------------------------------------------------

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
  enabled: option(Schema.Boolean, trueOrFalse, (input) => input ?? true),
  /**
   * The clock the probe schedule runs on. `"live"` (default): real time, also
   * under `TestClock`, so an `it.effect` test against a real cluster sees
   * health change. `"ambient"`: the fiber's clock, for unit tests with stubbed
   * probes driven by `TestClock.adjust` (a real probe's I/O does not wait for
   * `TestClock`). Probe timeouts are always real time.
   */
  clock: option(Schema.Literals(healthClocks), oneOf(healthClocks), (input) => input ?? "live"),
  /**
   * Slow start: a replica that returns to rotation after a failure (probes,
   * or `markReplicaHealthy` after a mark) gets a share of reads that grows
   * linearly from none to its full share over this time, instead of all at
   * once (a cold cache, a replica catching up). Default: off.
   */
  slowStart: option(PositiveDuration, positive, durationIfSet)
}

/** @internal */
export const defaultMaxInterval = Duration.seconds(15)
const patroniOptions = {
  /**
   * The members' REST API base URLs (`http://db1:8008`, credentials
   * allowed), asked in turn for `GET /cluster`: the first that answers is
   * used. Required.
   */
  urls: option(
    Schema.Array(RestUrl).check(holds((urls) => urls.length >= 1)),
    "must be a non-empty array of Patroni REST API URLs",
    asGiven,
    restUrl
  ),
  /** A request that takes longer fails, and the next URL is asked; default 1 second. */
  timeout: option(PositiveDuration, positive, durationOr("1 second"))
}

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
    Schema.Literals(notCaughtUpPolicies),
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

/** How the driver uses the connections of one role's pools (the native driver's settings). */
const poolOptions = {
  /**
   * Pipeline statements from many fibers on each pooled connection
   * (`@effect/sql-pg`'s `multiplex`): far more throughput at high
   * concurrency, but statements sharing a connection queue behind the slowest
   * of them. Transactions, streams and LISTEN still reserve a connection.
   * Default false.
   */
  multiplex: option(Schema.Boolean, trueOrFalse, (input) => input ?? false),
  /** With `multiplex`: how many statements may share one connection; default 32. */
  multiplexConcurrency: option(wholeNumber(1), "must be a whole number of at least 1", (input) => input ?? 32),
  /**
   * Named prepared statements, cached per connection; default true. Set false
   * behind a pooler that cannot keep them between statements (PgBouncer in
   * transaction mode with `max_prepared_statements = 0`).
   */
  prepare: option(Schema.Boolean, trueOrFalse, (input) => input ?? true),
  /**
   * Connections each pool of this role keeps open even when idle; default 0
   * (a pool shrinks to nothing). At most the role's pool size
   * (`primaryMaxSize`, `replicaMaxSizeEach`).
   */
  minConnections: option(
    wholeNumber(0),
    "must be a whole number, 0 or more, not above the role's pool size",
    (input) => input ?? 0
  )
}

/** @internal */
export const directOptions = {
  /** The primary's own address, for LISTEN (`Durable`) and CDC when `primary` is a pooler. */
  primary: option(Url, ConnectionString.expected, asGiven),
  /** One per entry of `replicas`, in the same order. */
  replicas: option(Schema.Array(Url), "must be an array of connection strings", asGiven, ConnectionString.expected),
  /** With `discovery: "auto"` and `hosts`: one per entry of `hosts`, in the same order. */
  hosts: option(Schema.Array(Url), "must be an array of connection strings", asGiven, ConnectionString.expected)
}

/** Every option of the router. @internal */
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
  discovery: option(Schema.Literals(discoveries), oneOf(discoveries), (input) => input ?? "manual"),
  /** With `discovery: "auto"`: the servers, in any order. */
  hosts: option(Schema.Array(Url), "must be an array of connection strings", asGiven, ConnectionString.expected),
  /** Default 10. */
  primaryMaxSize: option(PoolSize, poolSize, (input) => input ?? 10),
  /** How the primary's pool uses its connections: `multiplex`, `prepare`, `minConnections`. */
  primaryPool: group(poolOptions),
  /** URLs of the replicas; empty or absent: every query goes to the primary. */
  replicas: option(Schema.Array(Url), "must be an array of connection strings", asGiven, ConnectionString.expected),
  /** Default 10. */
  replicaMaxSizeEach: option(PoolSize, poolSize, (input) => input ?? 10),
  /**
   * Direct URLs of the same servers, for what a transaction-mode pooler
   * (PgBouncer) in front of them cannot carry: the LISTEN session of
   * `Durable` and CDC's replication and snapshot connections use the node's
   * direct URL when it is set; statements and transactions keep the pooled
   * `primary`/`replicas`/`hosts` URL. Each list, when given, has one URL per
   * entry of its counterpart, in the same order.
   */
  direct: group(directOptions),
  /** How each replica's pool uses its connections: `multiplex`, `prepare`, `minConnections`. */
  replicaPool: group(poolOptions),
  /**
   * How `withRead` picks among eligible replicas (default `round-robin`).
   * `least-lag` prefers the replica that has replayed the most WAL (see the
   * health monitor).
   */
  selection: option(Schema.Literals(selections), oneOf(selections), (input) => input ?? "round-robin"),
  /**
   * `fallback` (default): the primary serves reads only when no replica is
   * eligible. `overflow`: also when the chosen replica's pool is busy (no idle
   * connection, no room for another) and the primary's is not, so a burst of
   * reads uses the primary's spare connections instead of queueing. Writes
   * keep priority only as far as the primary's pool size allows.
   */
  primaryReads: option(Schema.Literals(primaryReadModes), oneOf(primaryReadModes), (input) => input ?? "fallback"),
  /**
   * Time to open a connection (connect, TLS, authentication); default 5
   * seconds. A wait for a free session of a full pool is not bounded by it
   * (the driver's bound would cost every statement about a fifth of its
   * throughput), as in the Effect 3 line: `readTimeout` (and the routed
   * client's `writeTimeout`) bound a statement's wait and run together.
   */
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
    Schema.Union([Schema.Literal("catalog"), Schema.Array(Schema.String)]),
    "must be an array of function names, or \"catalog\"",
    asGiven
  ),
  /**
   * Health probing and hysteresis. A replica leaves rotation after
   * `failureThreshold` consecutive failed probes and returns after
   * `successThreshold` consecutive good ones.
   */
  health: group(healthOptions),
  /** Replicas further behind than this get no reads (the seed's `lagTolerance`). */
  /**
   * Patroni as the source of truth (with `discovery: "auto"`): once per
   * health interval the router asks one member's REST API for `GET /cluster`;
   * while one answers, the leader it names is the primary, and replicas it
   * reports streaming take their health and lag from it (no PostgreSQL
   * probe). When none answers, PostgreSQL probes and discovery decide.
   */
  patroni: optionalGroup(patroniOptions),
  maxLag: group(maxLagOptions),
  /** Read-your-writes settings for causal sessions (see `Consistency`). */
  consistency: group(consistencyOptions),
  /** CDC rules (see `Cdc`), saved and loaded with the rest. */
  cdc: option(CdcSchema.Config, "must be an object { rules: [...] } of CDC rules (see Cdc.Rule)", asGiven)
}

/** Every option: users' side as its type, the JSON form as its encoded side. @internal */
export const Json = structOf(routerOptions)

/** What users write. @internal */
export type Input = typeof Json.Type

/** The options resolved one by one (before the ones that depend on each other). @internal */
export type ResolvedOptions = ResolvedOf<typeof routerOptions>

/** The resolved settings of one role's pools. @internal */
export type PoolOptions = ResolvedOf<typeof poolOptions>

/** The options of each object of the configuration, by its path. @internal */
export const optionsAt: Record<string, ReadonlyArray<string>> = (() => {
  const at: Record<string, ReadonlyArray<string>> = { "": Object.keys(routerOptions) }
  for (const [name, option] of Object.entries(routerOptions as Settings)) {
    if (option.options) at[name] = Object.keys(option.options)
  }
  return at
})()

/** What each field must be, by its path (array elements as `[]`), derived from the options. @internal */
export const reasons: Record<string, string> = (() => {
  const out: Record<string, string> = { "": "must be an object" }
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

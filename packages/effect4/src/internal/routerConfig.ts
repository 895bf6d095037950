/** @internal */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import type * as PlatformError from "effect/PlatformError"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as SchemaParser from "effect/SchemaParser"
import * as Crypto from "node:crypto"
import type { Resolved, RouterConfig } from "../RouterConfig.js"
import { InvalidConfig } from "../RouterError.js"
import * as ConnectionString from "./connectionString.js"
import { fromIssue, invalid, urlReason } from "./routerConfig/errors.js"
import { isRestUrl, resolveAll, type ResolvedOf, restUrl } from "./routerConfig/fields.js"
import { defaultMaxInterval, type directOptions, Json, reasons, routerOptions } from "./routerConfig/options.js"

// The configuration's pieces, one job a module: the field kit (./routerConfig/fields.ts),
// the options (./routerConfig/options.ts), the errors (./routerConfig/errors.ts), the
// environment (./routerConfig/env.ts). Here: resolving, and JSON persistence.

export { envEnum, envPoolSize, envUrl, envUrls, fromEnv, splitUrls } from "./routerConfig/env.js"
export { fromIssue, pathOf } from "./routerConfig/errors.js"
export {
  discoveries,
  healthClocks,
  isRestUrl,
  notCaughtUpPolicies,
  primaryReadModes,
  type ResolvedOf,
  selections,
  type Setting,
  type Settings
} from "./routerConfig/fields.js"
export {
  type Input,
  Json,
  optionsAt,
  type PoolOptions,
  reasons,
  type ResolvedOptions,
  routerOptions
} from "./routerConfig/options.js"

// -----------------------------------------------------------------------------
// resolve
// -----------------------------------------------------------------------------

const parseOptions = { errors: "first", onExcessProperty: "error" } as const

const decodeInput = SchemaParser.decodeUnknownResult(Schema.toType(Json), parseOptions)

/** The resolved settings of one role's pools, as a node is made from them. @internal */
export const poolFor = (config: Resolved, role: "primary" | "replica") => {
  const pool = role === "primary" ? config.primaryPool : config.replicaPool
  return {
    maxSize: role === "primary" ? config.primaryMaxSize : config.replicaMaxSizeEach,
    minSize: pool.minConnections,
    multiplex: pool.multiplex,
    multiplexConcurrency: pool.multiplexConcurrency,
    prepare: pool.prepare
  }
}

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
    const result = decodeInput(config)
    if (Result.isFailure(result)) return Effect.fail(fromIssue(config, "type")(result.failure))
    const { cdc: _, hosts: given, patroni, sideEffectFunctions, ...options } = resolveAll(routerOptions, result.success)
    // The options that depend on each other: who the servers are, and pool bounds.
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
    const { interval, maxInterval } = options.health
    if (maxInterval !== undefined && Duration.isLessThan(maxInterval, interval)) {
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
    return Effect.succeed<Resolved>({
      ...options,
      direct,
      health: { ...options.health, maxInterval: maxInterval ?? Duration.max(defaultMaxInterval, interval) },
      patroni: patroni && { urls: patroni.urls!, timeout: patroni.timeout },
      primary: discovery === "auto" ? hosts[0]! : options.primary!,
      replicas: discovery === "auto" ? hosts.slice(1) : options.replicas ?? [],
      sideEffectFunctions: sideEffectFunctions === "catalog" ? [] : sideEffectFunctions ?? [],
      sideEffectCatalog: sideEffectFunctions === "catalog"
    })
  })

// -----------------------------------------------------------------------------
// JSON persistence
// -----------------------------------------------------------------------------

const scrubUrl = (field: ReadonlyArray<PropertyKey>, url: Redacted.Redacted<string>) =>
  !Redacted.isRedacted(url)
    ? Effect.fail(invalid(field, urlReason(url, "type")))
    : Result.match(ConnectionString.withoutPassword(Redacted.value(url)), {
      onFailure: () => Effect.fail(invalid(field, urlReason(url, "type"))),
      onSuccess: (text) => Effect.succeed(Redacted.make(text))
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

const encodeJson = SchemaParser.encodeUnknownResult(Json, parseOptions)
const decodeJson = SchemaParser.decodeUnknownResult(Json, parseOptions)

/** @internal */
export const toJson = (
  config: RouterConfig,
  options: { readonly includeSecrets?: boolean | undefined } = {}
): Effect.Effect<typeof Json.Encoded, InvalidConfig> =>
  Effect.flatMap(
    options.includeSecrets ? Effect.succeed(config) : withoutSecrets(config),
    (input) =>
      Result.match(encodeJson(input), {
        onFailure: (issue) => Effect.fail(fromIssue(input, "type")(issue)),
        onSuccess: Effect.succeed
      })
  )

/** @internal */
export const fromJson = (json: unknown): Effect.Effect<RouterConfig, InvalidConfig> =>
  Effect.suspend(() => {
    const decoded = decodeJson(json)
    if (Result.isFailure(decoded)) return Effect.fail(fromIssue(json, "json")(decoded.failure))
    return Effect.as(resolve(decoded.success), decoded.success)
  })

const decodeText = SchemaParser.decodeUnknownResult(Schema.fromJsonString(Schema.Unknown))

/** @internal */
export const load = (
  path: string
): Effect.Effect<RouterConfig, InvalidConfig | PlatformError.PlatformError, FileSystem.FileSystem> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const text = yield* fs.readFileString(path)
    // JSON.parse's message quotes the text around the error: not shown.
    const json = decodeText(text)
    if (Result.isFailure(json)) {
      return yield* new InvalidConfig({ field: "file", reason: `${path} is not valid JSON` })
    }
    return yield* fromJson(json.success)
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
      Effect.andThen(fs.rename(staging, path)),
      Effect.onError(() => Effect.ignore(fs.remove(staging)))
    )
  })

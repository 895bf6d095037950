/** @internal */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Either from "effect/Either"
import * as Redacted from "effect/Redacted"
import type { RouterConfig } from "../../RouterConfig.js"
import * as ConnectionString from "../connectionString.js"
import { discoveries, oneOf, primaryReadModes, selections } from "./fields.js"
import { reasons } from "./options.js"

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

/** @internal */
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as SchemaGetter from "effect/SchemaGetter"
import * as SchemaIssue from "effect/SchemaIssue"
import type { RouterConfig } from "../../RouterConfig.js"
import * as ConnectionString from "../connectionString.js"
import { discoveries, oneOf, poolSize, primaryReadModes, selections } from "./fields.js"

// -----------------------------------------------------------------------------
// The environment
// -----------------------------------------------------------------------------

/** @internal */
export const splitUrls = (list: string): ReadonlyArray<Redacted.Redacted<string>> =>
  list.split(",").map((s) => s.trim()).filter((s) => s.length > 0).map((s) => Redacted.make(s))

/**
 * A variable read as text and checked by `parse`, whose failure is a fixed
 * reason: Config's own schemas would say "got <the value>" with input
 * reporting on, and a value may be a password. The error names the variable
 * (its path) and the reason.
 */
const fromText = <A>(parse: (text: string) => Result.Result<A, string>) =>
  Schema.String.pipe(
    Schema.decodeTo(Schema.Any as Schema.Codec<A, A>, {
      decode: SchemaGetter.transformEffect((text: string) =>
        Result.match(parse(text), {
          onFailure: (message) => Effect.fail(new SchemaIssue.InvalidValue({ message })),
          onSuccess: (value) => Effect.succeed(value)
        })
      ),
      encode: SchemaGetter.forbidden(() => "a setting read from the environment is not written back")
    })
  )

const env = <A>(name: string, parse: (text: string) => Result.Result<A, string>): Config.Config<A> =>
  Config.schema(fromText(parse), name)

/** @internal */
export const envEnum = <const A extends ReadonlyArray<string>>(name: string, values: A): Config.Config<A[number]> =>
  env(name, (text) => values.includes(text) ? Result.succeed(text as A[number]) : Result.fail(oneOf(values)))

/** @internal */
export const envPoolSize = (name: string): Config.Config<number> =>
  env(name, (text) => {
    const n = Number(text.trim())
    return /^\s*\d+\s*$/.test(text) && n >= 1 && n <= 10_000 ? Result.succeed(n) : Result.fail(poolSize)
  })

/** @internal */
export const envUrl = (name: string): Config.Config<Redacted.Redacted<string>> =>
  env(name, (text) => Result.map(ConnectionString.parseTarget(text), () => Redacted.make(text)))

/** @internal */
export const envUrls = (name: string): Config.Config<ReadonlyArray<Redacted.Redacted<string>>> =>
  env(name, (list) => {
    const urls = splitUrls(list)
    for (const [i, url] of urls.entries()) {
      const checked = ConnectionString.parseTarget(Redacted.value(url))
      if (Result.isFailure(checked)) return Result.fail(`entry ${i + 1}: ${checked.failure}`)
    }
    return Result.succeed(urls)
  }).pipe(Config.withDefault<ReadonlyArray<Redacted.Redacted<string>>>([]))

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

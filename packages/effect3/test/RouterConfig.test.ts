import * as FileSystem from "@effect/platform/FileSystem"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { describe, expect, it } from "@effect/vitest"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Path from "node:path"
import * as RouterConfig from "effect-sql-router/RouterConfig"
import * as SqlRouter from "effect-sql-router/SqlRouter"
import * as Internal from "../src/internal/routerConfig.js"

// Pure logic: nothing here opens a connection (every config either fails
// validation before a pool exists, or is only read, saved and loaded).

const secret = "hunter2-Secret"
const url = (s: string) => Redacted.make(s)
const ok = url("postgres://app@db-1:5432/app")

const withEnv = (env: Record<string, string>) => Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

/** Never the secret, in the message, the reason, or the error as JSON. */
const expectNoSecret = (error: unknown) => {
  expect(String((error as Error).message)).not.toContain(secret)
  expect(JSON.stringify(error)).not.toContain(secret)
  expect(String(error)).not.toContain(secret)
}

describe("SqlRouter.layerConfig", () => {
  it("takes a Config for each field, as PgClient.layerConfig does (typecheck)", () => {
    const layer: Layer.Layer<SqlRouter.SqlRouter, unknown> = SqlRouter.layerConfig({
      primary: Config.redacted("DATABASE_URL"),
      replicas: Config.array(Config.redacted("R")),
      selection: Config.literal("round-robin", "least-lag")("SELECTION"),
      health: { interval: Config.duration("HEALTH_INTERVAL"), enabled: Config.boolean("HEALTH") }
    })
    const client = SqlRouter.layerClientConfig({ primary: Config.redacted("DATABASE_URL") })
    const whole = SqlRouter.layerConfig(RouterConfig.fromEnv)
    expect([layer, client, whole].every(Layer.isLayer)).toBe(true)
  })

  it.effect("reads each field's Config and validates the result at build", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Layer.build(SqlRouter.layerConfig({
          primary: Config.redacted("DATABASE_URL"),
          replicas: Config.array(Config.redacted("R")),
          primaryMaxSize: Config.integer("POOL")
        })).pipe(Effect.scoped, withEnv({ DATABASE_URL: `postgres://app:${secret}@db/app`, R: "", POOL: "0" }))
      )
      expect(error._tag).toBe("InvalidConfig")
      expect(error._tag === "InvalidConfig" && error.field).toBe("primaryMaxSize")
      expectNoSecret(error)
    }))

  it.effect("a missing variable is a ConfigError naming it", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Layer.build(SqlRouter.layerConfig({ primary: Config.redacted("DATABASE_URL") })).pipe(Effect.scoped, withEnv({}))
      )
      expect(error._tag === "ConfigError" && error._op).toBe("MissingData")
      expect(String(error)).toContain("DATABASE_URL")
    }))
})

describe("RouterConfig.fromEnv", () => {
  const base = { DATABASE_URL: `postgres://app:${secret}@db-1/app` }

  it.effect("reads every variable; URLs stay Redacted", () =>
    Effect.gen(function*() {
      const config = yield* RouterConfig.fromEnv.pipe(withEnv({
        ...base,
        DATABASE_REPLICA_URLS: "postgres://app@db-2/app, postgres:///app?host=/var/run/postgresql",
        DATABASE_REPLICA_SELECTION: "least-lag",
        DATABASE_DISCOVERY: "auto",
        DATABASE_PRIMARY_READS: "overflow",
        DATABASE_POOL_SIZE: "20",
        DATABASE_REPLICA_POOL_SIZE: "5"
      }))
      expect(Redacted.isRedacted(config.primary)).toBe(true)
      expect(String(config.primary)).not.toContain(secret)
      expect(config.replicas!.map(Redacted.value)).toEqual([
        "postgres://app@db-2/app",
        "postgres:///app?host=/var/run/postgresql"
      ])
      expect([config.selection, config.discovery, config.primaryReads]).toEqual(["least-lag", "auto", "overflow"])
      expect([config.primaryMaxSize, config.replicaMaxSizeEach]).toEqual([20, 5])
      const defaults = yield* RouterConfig.fromEnv.pipe(withEnv(base))
      expect([defaults.selection, defaults.discovery, defaults.primaryReads]).toEqual(["round-robin", "manual", "fallback"])
      expect(defaults.replicas).toEqual([])
    }))

  const bad: ReadonlyArray<readonly [string, string, ReadonlyArray<string>]> = [
    ["DATABASE_REPLICA_SELECTION", `fastest-${secret}`, RouterConfig.selections],
    ["DATABASE_DISCOVERY", `${secret}`, ["manual", "auto"]],
    ["DATABASE_PRIMARY_READS", `${secret}`, ["fallback", "overflow"]],
    ["DATABASE_POOL_SIZE", `1${secret}`, ["1 to 10000"]],
    ["DATABASE_REPLICA_POOL_SIZE", "-3", ["1 to 10000"]],
    ["DATABASE_URL", `mysql://app:${secret}@db/app`, ["postgres://"]],
    ["DATABASE_REPLICA_URLS", `postgres://app@db-2/app,postgres://app:${secret}@db-3:99999/app`, ["entry 2", "port"]]
  ]
  for (const [name, value, allowed] of bad) {
    it.effect(`${name}: a ConfigError when read, naming it and what is allowed, not the value`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(RouterConfig.fromEnv.pipe(withEnv({ ...base, [name]: value })))
        expect(error._op).toBe("InvalidData")
        const text = String(error)
        expect(text).toContain(name)
        for (const word of allowed) expect(text).toContain(word)
        expect(text).not.toContain(value)
        expect(text).not.toContain(secret)
      }))
  }
})

describe("connection strings (parsed as pg parses them)", () => {
  const accepted = [
    "postgres://app:pw@db:5432/app",
    "postgresql://db/app",
    "postgres:///app?host=/var/run/postgresql",
    "postgres://app:pw@/app?host=/var/run/postgresql",
    "socket:/var/run/postgresql?db=app",
    "postgres://[::1]:5433/app",
    "postgres://db/app?sslmode=disable&application_name=x"
  ]
  for (const text of accepted) {
    it.effect(`accepts ${text}`, () =>
      Effect.map(RouterConfig.resolve({ primary: url(text) }), (resolved) =>
        expect(Redacted.value(resolved.primary)).toBe(text)))
  }

  const rejected: ReadonlyArray<readonly [string, string]> = [
    [`mysql://app:${secret}@db/app`, "does not start with postgres://"],
    [`postgres:/db/app?password=${secret}`, "names no host"],
    [`postgres://app:${secret}@db:99999/app`, "cannot parse"],
    [`postgres://app:${secret}@db/app?port=x${secret}`, "port"],
    [`:${secret}@`, "does not start with postgres://"]
  ]
  for (const [text, why] of rejected) {
    it.effect(`rejects ${text.replace(secret, "<secret>")}: names the field, not the password`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(RouterConfig.resolve({ primary: ok, replicas: [ok, url(text)] }))
        expect(error.field).toBe("replicas[1]")
        expect(error.reason).toContain("must be a PostgreSQL connection string")
        expect(error.reason).toContain(why)
        expectNoSecret(error)
      }))
  }
})

describe("InvalidConfig never echoes a value (issue 16, item 9)", () => {
  // A wrong value for a field: an object when the field is a scalar, a text when it is an object.
  const objects = new Set(["", "health", "maxLag", "consistency", "cdc", "direct", "patroni", "primaryPool", "replicaPool"])
  const wrong = (key: string) => objects.has(key) ? `postgres://app:${secret}@db/app` : { password: secret }
  const configWith = (key: string, value: unknown): unknown => {
    if (key === "") return value
    const [head, ...rest] = key.replace("[]", "").split(".") as [string, ...Array<string>]
    const leaf = key.endsWith("[]") ? [value] : value
    const nested = rest.length === 0 ? leaf : { [rest[0]!]: leaf }
    return head === "primary" ? { [head]: nested } : { primary: ok, [head]: nested }
  }
  const fieldOf = (key: string) => key === "" ? "config" : key.replace("[]", "[0]")

  it("every option has a reason of its own", () => {
    for (const [parent, keys] of Object.entries(Internal.optionsAt)) {
      for (const key of keys) expect(Internal.reasons[parent === "" ? key : `${parent}.${key}`]).toBeDefined()
    }
  })

  for (const key of Object.keys(Internal.reasons)) {
    it.effect(`${fieldOf(key)}: named, with what it must be`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(RouterConfig.resolve(configWith(key, wrong(key)) as RouterConfig.RouterConfig))
        expect(error.field).toBe(fieldOf(key))
        expect(error.reason).toMatch(/^(must|is)/)
        expect(error.reason).not.toBe("is invalid")
        expect(error.message).toContain(fieldOf(key))
        expectNoSecret(error)
      }))
  }

  const enums: ReadonlyArray<readonly [string, ReadonlyArray<string>]> = [
    ["selection", RouterConfig.selections],
    ["discovery", ["manual", "auto"]],
    ["primaryReads", ["fallback", "overflow"]],
    ["consistency.onNotCaughtUp", ["primary", "fail"]]
  ]
  for (const [key, values] of enums) {
    it.effect(`${key}: a password put there is not quoted; every allowed value is`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(
          RouterConfig.resolve(configWith(key, `postgres://app:${secret}@db/app`) as RouterConfig.RouterConfig)
        )
        expect(error.field).toBe(key)
        for (const value of values) expect(error.reason).toContain(`"${value}"`)
        expectNoSecret(error)
      }))
  }

  it.effect("an unknown option is named with the known ones; a key that looks like a value is not", () =>
    Effect.gen(function*() {
      const typo = yield* Effect.flip(RouterConfig.resolve({ primary: ok, health: { intervall: 5 } } as never))
      expect(typo.field).toBe("health.intervall")
      expect(typo.reason).toContain("interval, maxInterval, replyTimeout, timeout, failureThreshold, successThreshold, enabled")
      const pasted = yield* Effect.flip(RouterConfig.resolve({ primary: ok, [`app:${secret}@db`]: 1 } as never))
      expect(pasted.field).toBe("config")
      expectNoSecret(pasted)
      expect((yield* Effect.flip(RouterConfig.resolve({ primary: ok, replica: [] } as never))).reason).toContain("validate")
      const inJson = yield* Effect.flip(RouterConfig.fromJson({ primary: "postgres://db/app", validate: "x" }))
      expect(inJson.field).toBe("validate")
      expect(inJson.reason).toContain("replicas")
      expect(inJson.reason).not.toContain("validate")
    }))

  it.effect("the JSON form gets the same reasons", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [unknown, string]> = [
        [{ replicas: [] }, "primary"],
        [{ primary: "postgres://h/db", replicas: ["postgres://ok/db", 42] }, "replicas[1]"],
        [{ primary: "postgres://h/db", replicas: ["postgres://ok/db", `nope-${secret}`] }, "replicas[1]"],
        [{ primary: "postgres://h/db", health: { interval: `soon-${secret}` } }, "health.interval"],
        [{ primary: "postgres://h/db", selection: secret }, "selection"],
        [{ primary: "postgres://h/db", maxLag: secret }, "maxLag"],
        [{ discovery: "auto", hosts: [] }, "hosts"],
        [[1, 2], "config"]
      ]
      for (const [json, field] of cases) {
        const error = yield* Effect.flip(RouterConfig.fromJson(json))
        expect(error.field).toBe(field)
        expectNoSecret(error)
      }
    }))
})

describe("one declaration per option", () => {
  it("the JSON Schema, the options and the reasons come from one table", () => {
    expect(Object.keys(Internal.Json.fields)).toEqual(Object.keys(Internal.routerOptions))
    expect(Internal.optionsAt[""]).toEqual([...Object.keys(Internal.routerOptions), "validate"])
    expect(Internal.optionsAt["health"]).toEqual(Object.keys(Internal.routerOptions.health.options!))
    for (const name of Object.keys(Internal.routerOptions)) expect(Internal.reasons[name]).toBeDefined()
  })

  it.effect("resolving fills every default from the table", () =>
    Effect.gen(function*() {
      const resolved = yield* RouterConfig.resolve({ primary: ok })
      expect(resolved.primaryMaxSize).toBe(10)
      expect(resolved.selection).toBe("round-robin")
      expect(Duration.toMillis(resolved.connectTimeout)).toBe(5000)
      expect(Duration.toMillis(resolved.health.interval)).toBe(1000)
      expect(resolved.health.successThreshold).toBe(2)
      expect(resolved.hedgeAfter).toBeUndefined()
      expect(resolved.readTimeout).toBeUndefined()
      expect(Duration.toMillis(resolved.consistency.afterSchemaChange)).toBe(1000)
      expect(Redacted.value(resolved.consistency.tokenSecret).length).toBeGreaterThanOrEqual(16)
      expect(Object.keys(resolved)).not.toContain("cdc")
      expect(Object.keys(resolved)).not.toContain("hosts")
      const hedged = yield* RouterConfig.resolve({ primary: ok, hedgeAfter: "20 millis" })
      expect(Duration.toMillis(hedged.hedgeAfter!)).toBe(20)
    }))
})

describe("toJson / fromJson: one Schema", () => {
  const config: RouterConfig.RouterConfig = {
    primary: url(`postgres://app:${secret}@db-1:5432/app`),
    replicas: [
      url(`postgres://app:${secret}@db-2:5432/app`),
      url(`postgres://app@/app?host=/var/run/postgresql&password=${secret}`)
    ],
    selection: "least-lag",
    connectTimeout: "2 seconds",
    health: { interval: Duration.millis(500), failureThreshold: 2 },
    maxLag: { time: 5000 },
    consistency: { maxWait: "50 millis", tokenSecret: url("0123456789abcdef0123") },
    validate: () => Promise.resolve(true)
  }

  it.effect("durations become milliseconds, URLs strings without passwords, secrets dropped", () =>
    Effect.gen(function*() {
      const json = yield* RouterConfig.toJson(config)
      expect(json).toEqual({
        primary: "postgres://app@db-1:5432/app",
        replicas: ["postgres://app@db-2:5432/app", "postgres://app@/app?host=%2Fvar%2Frun%2Fpostgresql"],
        selection: "least-lag",
        connectTimeout: 2000,
        health: { interval: 500, failureThreshold: 2 },
        maxLag: { time: 5000 },
        consistency: { maxWait: 50 }
      })
      const back = yield* RouterConfig.fromJson(json)
      const resolved = yield* RouterConfig.resolve(back)
      expect(Redacted.value(resolved.replicas[1]!)).toBe("postgres://app@/app?host=%2Fvar%2Frun%2Fpostgresql")
      expect(Duration.toMillis(resolved.connectTimeout)).toBe(2000)
      expect(Duration.toMillis(resolved.health.interval)).toBe(500)
      expect(Duration.toMillis(resolved.consistency.maxWait)).toBe(50)
    }))

  it.effect("includeSecrets keeps them", () =>
    Effect.gen(function*() {
      const json = yield* RouterConfig.toJson(config, { includeSecrets: true })
      expect(json.primary).toBe(`postgres://app:${secret}@db-1:5432/app`)
      expect(json.consistency?.tokenSecret).toBe("0123456789abcdef0123")
      const back = yield* RouterConfig.fromJson(json)
      expect(Redacted.value(back.consistency!.tokenSecret!)).toBe("0123456789abcdef0123")
    }))

  it.effect("durations may be written as text in a hand-written file", () =>
    Effect.gen(function*() {
      const back = yield* RouterConfig.fromJson({ primary: "postgres://db/app", health: { interval: "3 seconds" } })
      expect(Duration.toMillis((yield* RouterConfig.resolve(back)).health.interval)).toBe(3000)
    }))

  it.effect("an unparsable URL is a typed InvalidConfig naming the field, without the password (item 10)", () =>
    Effect.gen(function*() {
      for (const includeSecrets of [false, true]) {
        const bad = { ...config, replicas: [ok, url(`postgres://app:${secret}@db-2:99999/app`)] }
        const error = yield* Effect.flip(RouterConfig.toJson(bad, { includeSecrets }))
        expect(error._tag).toBe("InvalidConfig")
        expect(error.field).toBe("replicas[1]")
        expectNoSecret(error)
        const notRedacted = yield* Effect.flip(
          RouterConfig.toJson({ primary: `postgres://app:${secret}@db/app` } as never, { includeSecrets })
        )
        expect(notRedacted.field).toBe("primary")
        expectNoSecret(notRedacted)
      }
    }))

  it.effect("hedgeAfter: off by default, saved and loaded as milliseconds, positive only", () =>
    Effect.gen(function*() {
      expect((yield* RouterConfig.resolve({ primary: ok })).hedgeAfter).toBeUndefined()
      const json = yield* RouterConfig.toJson({ primary: ok, readTimeout: "2 seconds", hedgeAfter: "150 millis" })
      expect(json).toEqual({ primary: "postgres://app@db-1:5432/app", readTimeout: 2000, hedgeAfter: 150 })
      const resolved = yield* RouterConfig.resolve(yield* RouterConfig.fromJson(json))
      expect(Duration.toMillis(resolved.hedgeAfter!)).toBe(150)
      for (const bad of [0, -5, "never", Duration.infinity, { password: secret }]) {
        const error = yield* Effect.flip(RouterConfig.resolve({ primary: ok, hedgeAfter: bad as never }))
        expect(error._tag).toBe("InvalidConfig")
        expect(error.field).toBe("hedgeAfter")
        expect(error.reason).toContain("positive")
        expectNoSecret(error)
      }
      const fromFile = yield* Effect.flip(RouterConfig.fromJson({ primary: "postgres://db/app", hedgeAfter: `soon-${secret}` }))
      expect(fromFile.field).toBe("hedgeAfter")
      expectNoSecret(fromFile)
    }))

  it.effect("consistency.afterSchemaChange: 1 second by default, 0 turns it off, saved as milliseconds", () =>
    Effect.gen(function*() {
      expect(Duration.toMillis((yield* RouterConfig.resolve({ primary: ok })).consistency.afterSchemaChange)).toBe(1000)
      const off = yield* RouterConfig.resolve({ primary: ok, consistency: { afterSchemaChange: 0 } })
      expect(Duration.toMillis(off.consistency.afterSchemaChange)).toBe(0)
      const json = yield* RouterConfig.toJson({ primary: ok, consistency: { afterSchemaChange: "250 millis" } })
      expect(json).toEqual({ primary: "postgres://app@db-1:5432/app", consistency: { afterSchemaChange: 250 } })
      for (const bad of ["never", Duration.infinity, { password: secret }]) {
        const error = yield* Effect.flip(RouterConfig.resolve({ primary: ok, consistency: { afterSchemaChange: bad as never } }))
        expect(error.field).toBe("consistency.afterSchemaChange")
        expect(error.reason).toContain("0 or more")
        expectNoSecret(error)
      }
    }))

  it.effect("JsonSchema is the Schema both ways", () =>
    Effect.gen(function*() {
      const { Schema } = yield* Effect.promise(() => import("effect"))
      const decoded = yield* Schema.decodeUnknown(RouterConfig.JsonSchema)({ primary: "postgres://db/app", idleTimeout: 100 })
      expect(Redacted.isRedacted(decoded.primary)).toBe(true)
      expect(yield* Schema.encode(RouterConfig.JsonSchema)(decoded)).toEqual({ primary: "postgres://db/app", idleTimeout: 100 })
    }))
})

describe("save / load with FileSystem", () => {
  const config: RouterConfig.RouterConfig = {
    primary: url(`postgres://app:${secret}@db-1:5432/app`),
    replicas: [url(`postgres://app:${secret}@db-2:5432/app`)],
    selection: "least-lag",
    connectTimeout: "2 seconds",
    health: { interval: "500 millis", failureThreshold: 2 },
    maxLag: { time: "5 seconds" },
    consistency: { tokenSecret: url("0123456789abcdef0123") }
  }

  it.scoped("round trip: secrets left out by default, kept when asked", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped({ prefix: "router-config-" })
      const file = Path.join(dir, "router.json")
      yield* RouterConfig.save(config, file)
      const text = yield* fs.readFileString(file)
      expect(text).not.toContain(secret)
      expect(text).not.toContain("0123456789abcdef0123")
      expect(((yield* fs.stat(file)).mode & 0o777).toString(8)).toBe("600")
      const loaded = yield* RouterConfig.load(file)
      expect(Redacted.value(loaded.primary!)).toBe("postgres://app@db-1:5432/app")
      expect(loaded.selection).toBe("least-lag")
      const resolved = yield* RouterConfig.resolve(loaded)
      expect(Duration.toMillis(resolved.connectTimeout)).toBe(2000)
      expect(Duration.toMillis(resolved.health.interval)).toBe(500)
      expect(resolved.health.failureThreshold).toBe(2)
      expect(Duration.toMillis(resolved.maxLag.time!)).toBe(5000)

      yield* RouterConfig.save(config, file, { includeSecrets: true })
      const full = yield* RouterConfig.load(file)
      expect(Redacted.value(full.replicas![0]!)).toContain(secret)
      expect(Redacted.value(full.consistency!.tokenSecret!)).toBe("0123456789abcdef0123")
      // Only the file itself: no staging file left behind.
      expect(yield* fs.readDirectory(dir)).toEqual(["router.json"])
    }).pipe(Effect.provide(NodeFileSystem.layer)))

  it.scoped("a file that is not JSON is InvalidConfig at file, without quoting it; a missing one a PlatformError", () =>
    Effect.gen(function*() {
      const fs = yield* FileSystem.FileSystem
      const dir = yield* fs.makeTempDirectoryScoped({ prefix: "router-config-" })
      const file = Path.join(dir, "broken.json")
      yield* fs.writeFileString(file, `{ "primary": "postgres://app:${secret}@db/app" `)
      const broken = yield* Effect.flip(RouterConfig.load(file))
      expect(broken._tag === "InvalidConfig" && broken.field).toBe("file")
      expectNoSecret(broken)
      const missing = yield* Effect.flip(RouterConfig.load(Path.join(dir, "missing.json")))
      expect(missing._tag).toBe("SystemError")
      expect(missing._tag === "SystemError" && missing.reason).toBe("NotFound")
      const unwritable = yield* Effect.flip(RouterConfig.save(config, Path.join(dir, "no-such-dir", "x.json")))
      expect(unwritable._tag).toBe("SystemError")
    }).pipe(Effect.provide(NodeFileSystem.layer)))
})

describe("direct URLs (a pooler in front of the servers)", () => {
  const pooled = (n: number) => url(`postgres://app:${secret}@bouncer-${n}:6432/app`)
  const direct = (n: number) => url(`postgres://app:${secret}@db-${n}:5432/app`)

  it.effect("aligned with primary and replicas; absent: no node has one", () =>
    Effect.gen(function*() {
      const resolved = yield* RouterConfig.resolve({
        primary: pooled(0),
        replicas: [pooled(1), pooled(2)],
        direct: { primary: direct(0), replicas: [direct(1), direct(2)] }
      })
      expect(Redacted.value(resolved.primary)).toContain("bouncer-0")
      expect(Redacted.value(resolved.direct.primary!)).toContain("db-0")
      expect(resolved.direct.replicas.map((u) => Redacted.value(u!).split("@")[1])).toEqual(["db-1:5432/app", "db-2:5432/app"])
      const none = yield* RouterConfig.resolve({ primary: pooled(0), replicas: [pooled(1)] })
      expect(none.direct).toEqual({ primary: undefined, replicas: [] })
      // Only the primary's: LISTEN and CDC need no more.
      const primaryOnly = yield* RouterConfig.resolve({ primary: pooled(0), replicas: [pooled(1)], direct: { primary: direct(0) } })
      expect(primaryOnly.direct.replicas).toEqual([])
    }))

  it.effect("with hosts: direct.hosts, one per host, the first standing for hosts[0]", () =>
    Effect.gen(function*() {
      const resolved = yield* RouterConfig.resolve({
        discovery: "auto",
        hosts: [pooled(0), pooled(1)],
        direct: { hosts: [direct(0), direct(1)] }
      })
      expect(Redacted.value(resolved.direct.primary!)).toContain("db-0")
      expect(Redacted.value(resolved.direct.replicas[0]!)).toContain("db-1")
    }))

  it.effect("a list of the wrong length, or the wrong list for the topology, is InvalidConfig naming the field, never a password", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [RouterConfig.RouterConfig, string, RegExp]> = [
        [{ primary: pooled(0), replicas: [pooled(1), pooled(2)], direct: { replicas: [direct(1)] } }, "direct.replicas", /one URL per entry of replicas \(2\)/],
        [{ primary: pooled(0), direct: { replicas: [direct(1)] } }, "direct.replicas", /replicas \(0\)/],
        [{ primary: pooled(0), direct: { hosts: [direct(0)] } }, "direct.hosts", /needs hosts/],
        [{ discovery: "auto", hosts: [pooled(0), pooled(1)], direct: { hosts: [direct(0)] } }, "direct.hosts", /hosts \(2\)/],
        [{ discovery: "auto", hosts: [pooled(0)], direct: { primary: direct(0) } }, "direct", /direct\.hosts/],
        [{ primary: pooled(0), direct: { primary: `postgres://app:${secret}@db/app` as never } }, "direct.primary", /^must/],
        [{ primary: pooled(0), replicas: [pooled(1)], direct: { replicas: [url(`mysql://app:${secret}@db/app`)] } }, "direct.replicas[0]", /.+/],
        [{ primary: pooled(0), direct: { port: 5432 } as never }, "direct.port", /is not a known option; the options here are primary, replicas, hosts/]
      ]
      for (const [config, field, reason] of cases) {
        const error = yield* Effect.flip(RouterConfig.resolve(config))
        expect(error._tag).toBe("InvalidConfig")
        expect([error.field, error.reason]).toEqual([field, expect.stringMatching(reason)])
        expectNoSecret(error)
      }
    }))

  it.effect("saved without passwords, kept with includeSecrets, loaded back", () =>
    Effect.gen(function*() {
      const config: RouterConfig.RouterConfig = {
        primary: pooled(0),
        replicas: [pooled(1)],
        direct: { primary: direct(0), replicas: [direct(1)] }
      }
      const json = yield* RouterConfig.toJson(config)
      expect(json.direct).toEqual({ primary: "postgres://app@db-0:5432/app", replicas: ["postgres://app@db-1:5432/app"] })
      expect(JSON.stringify(json)).not.toContain(secret)
      const withSecrets = yield* RouterConfig.toJson(config, { includeSecrets: true })
      expect(withSecrets.direct?.primary).toBe(`postgres://app:${secret}@db-0:5432/app`)
      const back = yield* RouterConfig.resolve(yield* RouterConfig.fromJson(withSecrets))
      expect(Redacted.value(back.direct.replicas[0]!)).toBe(`postgres://app:${secret}@db-1:5432/app`)
      expect(String(back.direct.primary)).not.toContain(secret)
    }))
})

describe("pools per role", () => {
  const ok = Redacted.make("postgres://app@db:5432/app")
  it.effect("minConnections: 0 by default; above the role's pool size is an InvalidConfig naming it", () =>
    Effect.gen(function*() {
      const resolved = yield* RouterConfig.resolve({ primary: ok })
      expect(resolved.primaryPool).toEqual({ minConnections: 0 })
      expect(resolved.replicaPool).toEqual({ minConnections: 0 })
      const set = yield* RouterConfig.resolve({ primary: ok, primaryMaxSize: 4, primaryPool: { minConnections: 4 } })
      expect(set.primaryPool.minConnections).toBe(4)
      const above = yield* Effect.flip(RouterConfig.resolve({ primary: ok, primaryPool: { minConnections: 11 } }))
      expect(above.field).toBe("primaryPool.minConnections")
      const replica = yield* Effect.flip(
        RouterConfig.resolve({ primary: ok, replicaMaxSizeEach: 2, replicaPool: { minConnections: 3 } })
      )
      expect(replica.field).toBe("replicaPool.minConnections")
      const negative = yield* Effect.flip(RouterConfig.resolve({ primary: ok, replicaPool: { minConnections: -1 } }))
      expect(negative.field).toBe("replicaPool.minConnections")
    }))
})

import { describe, expect, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as Redacted from "effect/Redacted"
import * as Util from "node:util"
import * as NodeModule from "@effect-sql-router/effect4/Node"
import * as SqlRouter from "@effect-sql-router/effect4/SqlRouter"
import { PgCluster } from "@effect-sql-router/effect4/testing"
import * as ConsistencyInternal from "../src/internal/consistency.js"
import * as Errors from "../src/internal/errors.js"

const secret = "hunter2-Secret"

/** Every line `effect` logs, as the logfmt and the structured loggers print them. */
const logged = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const lines: Array<string> = []
    const capture = Logger.make((options) => {
      lines.push(Logger.formatLogFmt.log(options), JSON.stringify(Logger.formatStructured.log(options)))
    })
    yield* effect.pipe(Effect.provideService(Logger.CurrentLoggers, new Set([capture])))
    return lines.join("\n")
  })

describe("a Node never shows its password (issue 16, item 11)", () => {
  const makeNode = NodeModule.make({
    id: "primary",
    role: "primary",
    url: Redacted.make(`postgres://app:${secret}@127.0.0.1:1/app?password=${secret}`),
    maxSize: 2,
    connectTimeout: Duration.seconds(1),
    idleTimeout: Duration.seconds(1),
    applicationName: "secrets-test"
  })

  it.effect("inspect, JSON, toString and Effect.log show id, role and address only", () =>
    Effect.gen(function*() {
      const node = yield* makeNode
      // The node's client does hold the password: that is what must stay out of sight.
      expect(Redacted.value(node.client.config.url!)).toContain(secret)
      const shown = { _id: "Node", id: "primary", role: "primary", address: "127.0.0.1:1" }
      expect(JSON.parse(JSON.stringify(node))).toEqual(shown)
      expect(JSON.parse(JSON.stringify({ nested: [node] }))).toEqual({ nested: [shown] })
      expect(String(node)).toBe("Node(primary, primary, 127.0.0.1:1)")
      expect(`${node}`).not.toContain(secret)
      const inspected = Util.inspect(node, { depth: 10, showHidden: true })
      expect(inspected).toContain("127.0.0.1:1")
      expect(inspected).not.toContain(secret)
      expect(Util.inspect({ lease: { node } }, { depth: 10 })).not.toContain(secret)
      const lines = yield* logged(Effect.andThen(Effect.log(node), Effect.log("node", { node })))
      expect(lines).toContain("127.0.0.1:1")
      expect(lines).not.toContain(secret)
    }))

  it.effect("the display is not data: no new enumerable keys on the node", () =>
    Effect.gen(function*() {
      const node = yield* makeNode
      expect(Object.keys(node)).not.toContain("toJSON")
      expect(Object.keys(node)).not.toContain("toString")
      expect(Object.keys(node)).toContain("client")
      expect((yield* node.stats).max).toBe(2)
    }))
})

describe("failure descriptions are scrubbed", () => {
  const cases = [
    `connect postgres://app:${secret}@db:5432/app failed`,
    `postgresql://app:p@ss-${secret}@db/app`,
    `postgres://app@db/app?sslmode=require&password=${secret}&application_name=x`,
    `postgres://db/app?sslpassword=${secret}`
  ]
  for (const text of cases) {
    it(`removes the password from ${text.replace(secret, "<secret>")}`, () => {
      const scrubbed = Errors.describe(new Error(text))
      expect(scrubbed).not.toContain(secret)
      expect(scrubbed).toContain("db")
    })
  }
})

describe("causal tokens: one spelling (issue 16, item 13)", () => {
  const internals = {
    config: { consistency: { tokenSecret: Redacted.make("a-shared-secret-of-32-characters") } },
    systemIdentifier: "7312345678901234567"
  } as unknown as Parameters<typeof ConsistencyInternal.decodeToken>[0]
  const token = ConsistencyInternal.encodeToken(internals, { lsn: 0x16b374d848n, lastWriteAt: undefined })
  const signature = token.split(".")[3]!
  const base = token.slice(0, token.length - signature.length)
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

  it.effect("the canonical token decodes", () =>
    Effect.map(ConsistencyInternal.decodeToken(internals, token), (state) => expect(state.lsn).toBe(0x16b374d848n)))

  // 16 bytes are 22 characters: the last carries 2 bits and 4 spare ones that Buffer ignores.
  const last = signature[signature.length - 1]!
  const sameBytes = alphabet.split("").filter((c) =>
    c !== last && Buffer.from(signature.slice(0, -1) + c, "base64url").equals(Buffer.from(signature, "base64url"))
  )
  const variants: ReadonlyArray<readonly [string, string]> = [
    ["a trailing =", `${signature}=`],
    ["two trailing =", `${signature}==`],
    ["another last character with the same bytes", signature.slice(0, -1) + sameBytes[0]!],
    ["the standard alphabet", signature.replaceAll("-", "+").replaceAll("_", "/") + (/[-_]/.test(signature) ? "" : "==")],
    ["a character outside the alphabet", `${signature.slice(0, 10)}!${signature.slice(10)}`],
    ["white space", `${signature.slice(0, 10)} ${signature.slice(10)}`]
  ]

  it("the variants decode to the same bytes (so only the spelling check can reject them)", () => {
    expect(sameBytes.length).toBeGreaterThan(0)
    for (const [, variant] of variants) {
      expect(Buffer.from(variant, "base64url").equals(Buffer.from(signature, "base64url"))).toBe(true)
    }
  })

  for (const [name, variant] of variants) {
    it.effect(`rejects ${name}`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(ConsistencyInternal.decodeToken(internals, base + variant))
        expect(error._tag).toBe("InvalidToken")
      }))
  }
})

describe("on a real cluster", () => {
  it.live("discovery: auto with every host failing says why for each host, without the password (item 12)", () =>
    Effect.gen(function*() {
      const cluster = yield* PgCluster.make({ replicas: 1 })
      const [primary, replica] = [cluster.primary, cluster.replicas[0]!]
      const stranger = (node: PgCluster.ClusterNode) =>
        Redacted.make(`postgres://nobody:${secret}@${node.host}:${node.port}/${node.database}`)
      const closed = Redacted.make(`postgres://app:${secret}@127.0.0.1:1/app`)
      const error = yield* Effect.flip(
        SqlRouter.make({
          discovery: "auto",
          hosts: [stranger(primary), replica.url, closed],
          connectTimeout: "1 second",
          health: { enabled: false }
        }).pipe(Effect.scoped)
      )
      expect(error._tag).toBe("PrimaryUnavailable")
      if (error._tag !== "PrimaryUnavailable") return
      const reason = error.reason
      expect(reason).toContain(`${primary.host}:${primary.port} failed: role "nobody" does not exist`)
      expect(reason).toContain(`${replica.host}:${replica.port} is in recovery`)
      expect(reason).toMatch(/127\.0\.0\.1:1 failed: .*ECONNREFUSED/)
      expect(error.message).not.toContain(secret)
      expect(JSON.stringify(error)).not.toContain(secret)
    }).pipe(Effect.scoped))

  it.live("Effect.log of router.primary and of stats prints no password", () =>
    Effect.gen(function*() {
      const cluster = yield* PgCluster.make({ replicas: 0 })
      // The harness trusts every login, so any password gets in: the one in the URL is ours.
      const url = Redacted.make(
        `postgres://${cluster.primary.user}:${secret}@${cluster.primary.host}:${cluster.primary.port}/${cluster.primary.database}`
      )
      const router = yield* SqlRouter.make({ primary: url, health: { enabled: false } })
      const primary = yield* router.primary
      expect(yield* primary.client`SELECT 1 AS one`).toEqual([{ one: 1 }])
      expect(Redacted.value(primary.client.config.url!)).toContain(secret)
      const lines = yield* logged(Effect.gen(function*() {
        yield* Effect.log(primary)
        yield* Effect.log(yield* router.stats)
        yield* Effect.log(yield* router.currentConfig)
      }))
      expect(lines).toContain(`${cluster.primary.host}:${cluster.primary.port}`)
      expect(lines).not.toContain(secret)
    }).pipe(Effect.scoped))
})

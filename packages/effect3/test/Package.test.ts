/**
 * The package as a user gets it: `npm pack`, then the tarball installed by
 * the README's own install commands (verbatim, against the registry) into a
 * fresh consumer outside this repository, then used
 * from ES modules, from CommonJS and from TypeScript, and linted by publint
 * and @arethetypeswrong/cli.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { bin, exec, installCommands, ok, packWithCore, root } from "../../../scripts/test-support/packageCheck.js"

/** This package. */
const repo = Path.resolve(import.meta.dirname, "..")
const core = Path.join(root, "packages", "core")

/** The version installed here, so that the consumer's install is served from npm's cache. */
const installed = (name: string): string =>
  JSON.parse(Fs.readFileSync(Path.join(root, "node_modules", name, "package.json"), "utf8")).version

const manifest = JSON.parse(Fs.readFileSync(Path.join(repo, "package.json"), "utf8"))

/**
 * The install commands of the README's "Install" section for this line, word
 * by word, as a user copies them: a new upstream release that breaks them
 * fails here.
 */
const readmeInstall = installCommands("### Effect 3")

let work: string
let consumer: string
let tarball: string
let coreTarball: string

beforeAll(async () => {
  work = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-sql-router-package-"))
  consumer = Path.join(work, "consumer")
  Fs.mkdirSync(consumer)
  // prepack builds dist/ first (the core's too).
  const packed = await packWithCore(repo, core, work)
  tarball = packed.tarball
  coreTarball = packed.coreTarball
  Fs.writeFileSync(
    Path.join(consumer, "package.json"),
    JSON.stringify({ name: "consumer", private: true, type: "module" }, null, 2)
  )
  // The README's commands verbatim (the package itself from its tarball, and
  // its core dependency beside it, as neither is published yet), resolved
  // against the registry as a user's are.
  for (const [command, ...args] of readmeInstall) {
    const words = args.flatMap((word) => word === "effect-sql-router" ? [coreTarball, tarball] : [word])
    await ok(command!, [...words, "--no-audit", "--no-fund", "--loglevel=error"], consumer)
  }
  // What a TypeScript user of these modules adds.
  await ok("npm", [
    "install",
    "--save-dev",
    "--prefer-offline",
    "--no-audit",
    "--no-fund",
    "--loglevel=error",
    `@types/pg@${installed("@types/pg")}`,
    `@types/node@${installed("@types/node")}`
  ], consumer)
}, 300_000)

afterAll(() => {
  if (work !== undefined) Fs.rmSync(work, { recursive: true, force: true })
})

/** A program that uses the router against a real cluster from `effect-sql-router/testing`. */
const program = (load: string) => `
${load}
const main = Effect.gen(function*() {
  const cluster = yield* PgCluster.make({ replicas: 1 })
  yield* cluster.query(cluster.primary, "CREATE TABLE notes (id int PRIMARY KEY)")
  yield* cluster.awaitReplication()
  return yield* Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql\`INSERT INTO notes VALUES (1)\`
    const [row] = yield* SqlRouter.primary(sql\`SELECT count(*)::int AS n, current_setting('cluster_name') AS node FROM notes\`)
    const [read] = yield* sql\`SELECT current_setting('cluster_name') AS node\`
    return { written: row, read, classified: Classifier.routeQueryType("DELETE FROM notes") }
  }).pipe(Effect.provide(SqlRouter.layerClient({
    primary: cluster.primary.url,
    replicas: cluster.replicas.map((node) => node.url)
  })))
})
Effect.runPromise(Effect.scoped(main)).then(
  (result) => console.log(JSON.stringify(result)),
  (error) => { console.error(String(error)); process.exitCode = 1 }
)
`

const expected = { written: { n: 1, node: "primary" }, read: { node: "replica-0" }, classified: "write" }

describe("the packed package", () => {
  it("installs with the README's own commands: Effect 3 only, each peer once", async () => {
    expect(readmeInstall.map((words) => words.slice(0, 3).join(" "))).toEqual([
      "npm install effect-sql-router",
      "npm install --save-dev"
    ])
    const version = (name: string) =>
      JSON.parse(Fs.readFileSync(Path.join(consumer, "node_modules", name, "package.json"), "utf8")).version as string
    expect(version("effect")).toMatch(/^3\./)
    expect(version("@effect/sql")).toMatch(/^0\.52\./)
    expect(version("@effect/sql-pg")).toMatch(/^0\.53\./)
    // One copy of effect in the whole tree: two would mint different services.
    const tree = await ok("npm", ["ls", "effect", "--all", "--parseable"], consumer)
    const copies = tree.trim().split("\n").filter((line) => line.includes("node_modules"))
    expect(copies).toEqual([Path.join(consumer, "node_modules", "effect")])
  })

  it("ships dist/, the sources its maps point at, and no tests, benchmarks or scripts", async () => {
    const listing = await ok("tar", ["-tzf", tarball], work)
    const files = listing.trim().split("\n").map((line) => line.replace(/^package\//, ""))
    expect(files).toContain("dist/esm/index.js")
    expect(files).toContain("dist/cjs/index.js")
    expect(files).toContain("dist/esm/index.d.ts")
    expect(files).toContain("dist/cjs/index.d.ts")
    expect(files).toContain("dist/esm/index.js.map")
    expect(files).toContain("LICENSE")
    expect(files).toContain("CHANGELOG.md")
    expect(files.filter((file) => /^(test|bench|examples|scripts)\//.test(file))).toEqual([])
  })

  it("exports the root, ./testing and every public module, never internal/", () => {
    const modules = Fs.readdirSync(Path.join(repo, "src"))
      .filter((file) => file.endsWith(".ts") && file !== "index.ts")
      .map((file) => `./${file.slice(0, -3)}`)
    const exported = Object.keys(manifest.exports)
    expect(exported.sort()).toEqual([".", "./package.json", "./testing", ...modules].sort())
    expect(manifest.sideEffects).toEqual([])
  })

  it("runs from ES modules: a write on the primary, a read on a replica", async () => {
    const file = Path.join(consumer, "app.mjs")
    Fs.writeFileSync(file, program(`
import * as Effect from "effect/Effect"
import * as SqlClient from "@effect/sql/SqlClient"
import { Classifier, SqlRouter } from "effect-sql-router"
import { PgCluster } from "effect-sql-router/testing"`))
    const output = await ok(process.execPath, [file], consumer)
    expect(JSON.parse(output.trim().split("\n").pop()!)).toEqual(expected)
  })

  it("runs from CommonJS, subpath modules included", async () => {
    const file = Path.join(consumer, "app.cjs")
    Fs.writeFileSync(file, program(`
const Effect = require("effect/Effect")
const SqlClient = require("@effect/sql/SqlClient")
const SqlRouter = require("effect-sql-router/SqlRouter")
const { Classifier } = require("effect-sql-router")
const { PgCluster } = require("effect-sql-router/testing")`))
    const output = await ok(process.execPath, [file], consumer)
    expect(JSON.parse(output.trim().split("\n").pop()!)).toEqual(expected)
  })

  it("keeps internal modules private", async () => {
    const outcome = await exec(process.execPath, [
      "--input-type=module",
      "-e",
      "import(\"effect-sql-router/internal/errors.js\").then(() => console.log(\"imported\"), (e) => console.log(e.code))"
    ], consumer)
    expect(outcome.output.trim()).toBe("ERR_PACKAGE_PATH_NOT_EXPORTED")
  })

  const consumerSource = `import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as SqlClient from "@effect/sql/SqlClient"
import { RoutedClient, RouterError, SqlRouter } from "effect-sql-router"
import * as Selection from "effect-sql-router/Selection"
import { PgCluster } from "effect-sql-router/testing"

const layer = SqlRouter.layerClient({
  primary: Redacted.make("postgres://app@primary/app"),
  replicas: [Redacted.make("postgres://app@replica/app")],
  selection: "least-connections"
})
export const program: Effect.Effect<ReadonlyArray<{ readonly n: number }>, unknown> = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  return yield* sql<{ readonly n: number }>\`SELECT 1 AS n\`
}).pipe(Effect.provide(layer))
export const kinds = [RoutedClient, RouterError, Selection, PgCluster.layer] as const
`

  // The two consumers typecheck side by side (two tsc processes on two cores).
  it.concurrent.each([
    { name: "nodenext, ES2022", module: "nodenext", moduleResolution: "nodenext", target: "ES2022" },
    // An older lib too: the declarations must not need newer ones.
    { name: "bundler, ES2020", module: "esnext", moduleResolution: "bundler", target: "ES2020" }
  ])("typechecks a TypeScript consumer ($name, skipLibCheck: false)", async (options) => {
    const dir = Path.join(consumer, `ts-${options.moduleResolution}-${options.target}`)
    Fs.mkdirSync(dir, { recursive: true })
    Fs.writeFileSync(Path.join(dir, "app.ts"), consumerSource)
    Fs.writeFileSync(
      Path.join(dir, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          noEmit: true,
          skipLibCheck: false,
          module: options.module,
          moduleResolution: options.moduleResolution,
          target: options.target,
          lib: [options.target],
          types: ["node"]
        },
        files: ["app.ts"]
      })
    )
    const outcome = await exec(process.execPath, [Path.join(root, "node_modules/typescript/bin/tsc"), "-p", dir], dir)
    expect(outcome.output).toBe("")
    expect(outcome.code).toBe(0)
  }, 120_000)

  it("passes publint (strict)", async () => {
    const dir = Path.join(consumer, "node_modules", "effect-sql-router")
    const output = await ok(bin("publint"), ["run", "--strict", dir], consumer)
    expect(output).toContain("All good!")
  }, 60_000)

  it("brings its core, which needs no Effect and runs from ES modules and CommonJS", async () => {
    const coreManifest = JSON.parse(
      Fs.readFileSync(Path.join(consumer, "node_modules", "@effect-sql-router", "core", "package.json"), "utf8")
    )
    const needs = Object.keys({ ...coreManifest.dependencies, ...coreManifest.peerDependencies })
    expect(needs.filter((name) => name === "effect" || name.startsWith("@effect/"))).toEqual([])
    expect(manifest.dependencies["@effect-sql-router/core"]).toBe(coreManifest.version)
    const esm = await ok(process.execPath, [
      "--input-type=module",
      "-e",
      "import * as C from \"@effect-sql-router/core/Classifier\"; console.log(C.routeQueryType(\"SELECT 1\"), C.routeQueryType(\"SELECT nextval('s')\"))"
    ], consumer)
    expect(esm.trim()).toBe("read write")
    const cjs = await ok(process.execPath, [
      "-e",
      "const L = require(\"@effect-sql-router/core/Lsn\"); console.log(L.formatLsn(L.parseLsn(\"16/B374D848\")))"
    ], consumer)
    expect(cjs.trim()).toBe("16/B374D848")
    const lint = await ok(bin("publint"), ["run", "--strict", Path.join(consumer, "node_modules", "@effect-sql-router", "core")], consumer)
    expect(lint).toContain("All good!")
    const types = await ok(bin("attw"), [coreTarball, "--format", "ascii"], work)
    expect(types).toContain("No problems found")
  }, 120_000)

  it("passes @arethetypeswrong/cli for node10, node16 (CJS and ESM) and bundlers", async () => {
    const output = await ok(bin("attw"), [tarball, "--format", "ascii"], work)
    expect(output).toContain("No problems found")
  }, 120_000)
})

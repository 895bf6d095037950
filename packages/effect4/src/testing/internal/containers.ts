/** @internal */
import * as Effect from "effect/Effect"
import * as Scope from "effect/Scope"
import type { ClusterNode, Options } from "../PgCluster.js"
import { ClusterError } from "../PgCluster.js"
import type { Driver } from "./driver.js"
import { makeNode } from "./driver.js"
import { freePort } from "@effect-sql-router/core/embedded/Process"
import { optionSettings } from "@effect-sql-router/core/embedded/Template"

// testcontainers is an optional peer: it is loaded only when this backend is
// chosen, so its types are not required to build the library.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any

const moduleName = "testcontainers"

const fail = (operation: string, node: ClusterNode | undefined, reason: string, cause?: unknown) =>
  new ClusterError({ operation, reason, ...(node ? { node: node.name } : {}), ...(cause === undefined ? {} : { cause }) })

const attempt = <A>(operation: string, node: ClusterNode | undefined, f: () => Promise<A>) =>
  Effect.tryPromise({ try: f, catch: (cause) => fail(operation, node, String((cause as Error)?.message ?? cause), cause) })

const serverFlags = (settings: Readonly<Record<string, string>> | undefined): Array<string> =>
  Object.entries({
    wal_level: "replica",
    max_wal_senders: "16",
    wal_keep_size: "512MB",
    hot_standby: "on",
    hot_standby_feedback: "on",
    wal_receiver_status_interval: "1s",
    wal_retrieve_retry_interval: "200ms",
    fsync: "off",
    ...settings
  }).flatMap(([key, value]) => ["-c", `${key}=${value.replace(/^'(.*)'$/, "$1")}`])

/**
 * The official image: the primary allows replication connections from the
 * network; each replica clones it with pg_basebackup on first start. Host
 * ports are fixed so that a stopped and restarted container keeps its URL.
 * @internal
 */
export const testcontainers = (options: Options): Effect.Effect<Driver, ClusterError, Scope.Scope> =>
  Effect.gen(function*() {
    const tc: Any = yield* attempt("setup", undefined, () => import(moduleName)).pipe(
      Effect.mapError((error) =>
        fail("setup", undefined, "the testcontainers backend needs `npm install --save-dev testcontainers` and a Docker engine", error)
      )
    )
    const scope = yield* Effect.scope
    const image = options.image ?? "postgres:17-alpine"
    const network: Any = yield* Effect.acquireRelease(
      attempt("setup", undefined, () => new tc.Network().start()),
      (network: Any) => Effect.promise(() => network.stop().catch(() => {}))
    )
    const runtime: Any = yield* attempt("setup", undefined, () => tc.getContainerRuntimeClient())
    const containers = new Map<string, Any>()
    const frozen = new Set<string>()
    const stopped = new Set<string>()

    const startContainer = (name: string, role: "primary" | "replica", primaryAlias: string | undefined) =>
      Effect.acquireRelease(
        Effect.gen(function*() {
          const port = yield* attempt("setup", undefined, freePort)
          let container = new tc.GenericContainer(image)
            .withNetwork(network)
            .withNetworkAliases(name)
            .withEnvironment({ POSTGRES_HOST_AUTH_METHOD: "trust" })
            .withExposedPorts({ container: 5432, host: port })
            .withWaitStrategy(tc.Wait.forListeningPorts())
          if (role === "primary") {
            container = container
              .withCopyContentToContainer([{
                content: "echo 'host replication all all trust' >> \"$PGDATA/pg_hba.conf\"\n",
                target: "/docker-entrypoint-initdb.d/10-replication.sh"
              }])
              .withCommand(["postgres", ...serverFlags({ ...optionSettings(options), ...options.settings })])
          } else {
            const script = [
              "set -e",
              "if [ ! -s \"$PGDATA/PG_VERSION\" ]; then",
              `  until pg_basebackup -h ${primaryAlias} -U postgres -D "$PGDATA" -R -X stream; do rm -rf "$PGDATA"/*; sleep 0.5; done`,
              "  chmod 0700 \"$PGDATA\"",
              "fi",
              `exec postgres ${serverFlags({ ...optionSettings(options), ...options.settings }).map((f) => `'${f}'`).join(" ")}`
            ].join("\n")
            container = container.withUser("postgres").withEntrypoint(["bash", "-c", script])
          }
          const started: Any = yield* attempt("start", undefined, () => container.start())
          const node = makeNode(name, role, started.getHost(), port)
          containers.set(name, started)
          return node
        }),
        (node) => Effect.promise(() => containers.get(node.name)?.stop({ timeout: 0 }).catch(() => {}))
      )

    const primary = yield* startContainer("primary", "primary", undefined)
    const replicas = yield* Effect.forEach(
      Array.from({ length: options.replicas ?? 2 }, (_, i) => `replica-${i}`),
      (name) => startContainer(name, "replica", "primary"),
      { concurrency: "unbounded" }
    )
    const nodes: Array<ClusterNode> = [primary, ...replicas]

    const docker = (operation: string, node: ClusterNode, f: (container: Any) => Promise<unknown>) =>
      attempt(operation, node, () => f(runtime.container.getById(containers.get(node.name).getId())))

    return {
      backend: "testcontainers",
      directory: undefined,
      nodes,
      stop: (node) => docker("stop", node, (c) => c.stop({ t: 30 })).pipe(Effect.andThen(Effect.sync(() => void stopped.add(node.name)))),
      kill: (node) =>
        docker("kill", node, (c) => c.kill({ signal: "SIGKILL" })).pipe(Effect.andThen(Effect.sync(() => void stopped.add(node.name)))),
      start: (node) =>
        docker("start", node, (c) => c.start()).pipe(Effect.andThen(Effect.sync(() => {
          stopped.delete(node.name)
          frozen.delete(node.name)
        }))),
      freeze: (node) => docker("freeze", node, (c) => c.pause()).pipe(Effect.andThen(Effect.sync(() => void frozen.add(node.name)))),
      thaw: (node) => docker("thaw", node, (c) => c.unpause()).pipe(Effect.andThen(Effect.sync(() => void frozen.delete(node.name)))),
      isUp: (node) => !stopped.has(node.name) && !frozen.has(node.name),
      addReplica: (current) =>
        Effect.gen(function*() {
          const node = yield* startContainer(`replica-${nodes.length - 1}`, "replica", current.name)
          nodes.push(node)
          return node
        }).pipe(Scope.provide(scope)),
      restartAsStandby: (node) =>
        Effect.fail(fail("restartAsStandby", node, "the testcontainers backend cannot re-point a server")),
      rejoinAsStandby: (node) =>
        Effect.fail(fail("rejoinAsStandby", node, "the testcontainers backend cannot re-clone a server"))
    } satisfies Driver
  })

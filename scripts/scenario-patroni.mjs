#!/usr/bin/env node
// `npm run scenario:patroni`: both lines against a real Patroni + etcd
// cluster (not part of `npm test`). Starts etcd and three Patroni members
// (PostgreSQL from the system packages) in a temporary directory, runs each
// line's `examples/patroni-scenario.ts` (a router with the `patroni` source:
// write, read, then writes until they reach the new leader), kills the
// leader (its Patroni and its postmaster, SIGKILL: a crashed node), checks
// that every line's writes land on the leader Patroni elected, and tears
// everything down, also on failure or Ctrl-C. Missing binaries: says which,
// and how to install them, and exits with code 2.
import { spawn, spawnSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Readline from "node:readline"
import { fileURLToPath } from "node:url"

const root = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "..")
const log = (text) => console.log(`[scenario:patroni] ${text}`)

// -----------------------------------------------------------------------------
// What is needed, and what is missing
// -----------------------------------------------------------------------------

const onPath = (name) => {
  for (const dir of (process.env.PATH ?? "").split(Path.delimiter)) {
    const file = Path.join(dir, name)
    try {
      Fs.accessSync(file, Fs.constants.X_OK)
      return file
    } catch {
      // not here
    }
  }
  return undefined
}

/** The newest PostgreSQL server binaries: Debian's /usr/lib/postgresql/<major>/bin, else PATH. */
const postgresBin = () => {
  const base = "/usr/lib/postgresql"
  const majors = Fs.existsSync(base)
    ? Fs.readdirSync(base).filter((d) => /^\d+$/.test(d)).sort((a, b) => Number(b) - Number(a))
    : []
  for (const major of majors) {
    const dir = Path.join(base, major, "bin")
    if (["postgres", "initdb", "pg_basebackup"].every((b) => Fs.existsSync(Path.join(dir, b)))) return dir
  }
  const postgres = onPath("postgres")
  return postgres && onPath("initdb") && onPath("pg_basebackup") ? Path.dirname(postgres) : undefined
}

const patroni = onPath("patroni")
const etcd = onPath("etcd")
const bin = postgresBin()
const missing = [
  ...(patroni ? [] : [["patroni", "patroni"]]),
  ...(etcd ? [] : [["etcd", "etcd-server"]]),
  ...(bin ? [] : [["postgres, initdb, pg_basebackup (PostgreSQL server)", "postgresql"]])
]
if (missing.length > 0) {
  console.error("scenario:patroni needs a real Patroni + etcd cluster, and these are missing:")
  for (const [binary, pkg] of missing) console.error(`  - ${binary} (Debian/Ubuntu package: ${pkg})`)
  console.error(`Install them with: sudo apt-get install ${missing.map(([, pkg]) => pkg).join(" ")}`)
  console.error("(all of them: sudo apt-get install patroni etcd-server postgresql)")
  process.exit(2)
}

// -----------------------------------------------------------------------------
// The cluster
// -----------------------------------------------------------------------------

const freePort = () =>
  new Promise((resolve, reject) => {
    const server = Net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** PostgreSQL refuses to run as root: as root, the cluster runs as the `postgres` user. */
const runAs = (() => {
  if (process.getuid?.() !== 0) return {}
  const id = (flag) => Number(spawnSync("id", [flag, "postgres"], { encoding: "utf8" }).stdout.trim())
  const uid = id("-u")
  if (!Number.isInteger(uid) || uid === 0) {
    console.error("scenario:patroni runs as root, and there is no postgres user to run PostgreSQL as")
    process.exit(2)
  }
  return { uid, gid: id("-g") }
})()

const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "esr-patroni-"))
if (runAs.uid !== undefined) Fs.chownSync(dir, runAs.uid, runAs.gid)
Fs.chmodSync(dir, 0o755)
const processes = new Set()

const start = (name, command, args, options = {}) => {
  const out = Fs.openSync(Path.join(dir, `${name}.log`), "a")
  const child = spawn(command, args, { stdio: ["ignore", out, out], detached: true, ...options })
  processes.add(child)
  child.once("exit", () => processes.delete(child))
  return child
}

const members = []
let etcdProcess

const postmasterPid = (member) => {
  try {
    return Number(Fs.readFileSync(Path.join(member.dataDir, "postmaster.pid"), "utf8").split("\n")[0])
  } catch {
    return undefined
  }
}

const getCluster = async () => {
  for (const member of members) {
    try {
      const response = await fetch(`http://127.0.0.1:${member.apiPort}/cluster`, { signal: AbortSignal.timeout(1000) })
      if (response.ok) return await response.json()
    } catch {
      // ask the next
    }
  }
  return undefined
}

const until = async (what, check, seconds) => {
  const deadline = Date.now() + seconds * 1000
  for (;;) {
    const value = await check()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${seconds} s waiting for ${what}`)
    await sleep(500)
  }
}

let tornDown = false
const teardown = async () => {
  if (tornDown) return
  tornDown = true
  log("tearing down")
  for (const member of members) member.patroni?.kill("SIGTERM")
  const deadline = Date.now() + 30_000
  while (members.some((m) => m.patroni && m.patroni.exitCode === null && m.patroni.signalCode === null) && Date.now() < deadline) {
    await sleep(200)
  }
  for (const child of processes) {
    try {
      process.kill(-child.pid, "SIGKILL")
    } catch {
      // gone
    }
  }
  for (const member of members) {
    const pid = postmasterPid(member)
    if (pid) {
      try {
        process.kill(pid, "SIGKILL")
      } catch {
        // gone
      }
    }
  }
  etcdProcess?.kill("SIGKILL")
  await sleep(500)
  Fs.rmSync(dir, { recursive: true, force: true })
}

process.once("SIGINT", () => teardown().then(() => process.exit(130)))
process.once("SIGTERM", () => teardown().then(() => process.exit(143)))

const patroniConfig = (member, etcdPort) => ({
  scope: "esr-scenario",
  name: member.name,
  restapi: { listen: `127.0.0.1:${member.apiPort}`, connect_address: `127.0.0.1:${member.apiPort}` },
  etcd3: { hosts: [`127.0.0.1:${etcdPort}`] },
  bootstrap: {
    dcs: {
      ttl: 20,
      loop_wait: 2,
      retry_timeout: 5,
      maximum_lag_on_failover: 16 * 1024 * 1024,
      postgresql: {
        use_pg_rewind: true,
        parameters: { wal_level: "replica", hot_standby: "on", max_wal_senders: 10, max_replication_slots: 10, wal_log_hints: "on" }
      }
    },
    initdb: [{ encoding: "UTF8" }]
  },
  postgresql: {
    listen: `127.0.0.1:${member.pgPort}`,
    connect_address: `127.0.0.1:${member.pgPort}`,
    data_dir: member.dataDir,
    bin_dir: bin,
    pgpass: Path.join(dir, `${member.name}.pgpass`),
    authentication: {
      superuser: { username: "postgres", password: "scenario-pass" },
      replication: { username: "replicator", password: "scenario-rep" }
    },
    parameters: { unix_socket_directories: dir },
    pg_hba: [
      "local all all trust",
      "host all all 127.0.0.1/32 md5",
      "host replication replicator 127.0.0.1/32 md5"
    ]
  }
})

const line = (name, env) => {
  const cwd = Path.join(root, "packages", name)
  const tsx = Path.join(root, "node_modules", ".bin", "tsx")
  const child = spawn(Fs.existsSync(tsx) ? tsx : "npx", Fs.existsSync(tsx) ? ["examples/patroni-scenario.ts"] : ["tsx", "examples/patroni-scenario.ts"], {
    cwd,
    env: { ...process.env, PATRONI_SCENARIO: JSON.stringify(env) },
    stdio: ["pipe", "pipe", "inherit"]
  })
  processes.add(child)
  const said = []
  const waiters = []
  Readline.createInterface({ input: child.stdout }).on("line", (text) => {
    log(`${name}: ${text}`)
    said.push(text)
    for (const waiter of waiters.splice(0)) waiter()
  })
  const exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)))
  const saw = async (prefix, seconds) => {
    const deadline = Date.now() + seconds * 1000
    for (;;) {
      const found = said.find((text) => text.startsWith(prefix))
      if (found) return found
      if (child.exitCode !== null) throw new Error(`${name} exited (code ${child.exitCode}) before saying ${prefix}`)
      if (Date.now() > deadline) throw new Error(`${name} did not say ${prefix} within ${seconds} s`)
      await Promise.race([new Promise((resolve) => waiters.push(resolve)), sleep(500)])
    }
  }
  return { name, child, said, saw, exited }
}

const leaderOf = (cluster) => cluster?.members?.find((m) => m.role === "leader")

const main = async () => {
  log(`patroni ${patroni}, etcd ${etcd}, PostgreSQL ${bin}; working in ${dir}`)
  const [etcdPort, etcdPeer] = [await freePort(), await freePort()]
  etcdProcess = start("etcd", etcd, [
    "--name", "e1",
    "--data-dir", Path.join(dir, "etcd"),
    "--listen-client-urls", `http://127.0.0.1:${etcdPort}`,
    "--advertise-client-urls", `http://127.0.0.1:${etcdPort}`,
    "--listen-peer-urls", `http://127.0.0.1:${etcdPeer}`,
    "--initial-advertise-peer-urls", `http://127.0.0.1:${etcdPeer}`,
    "--initial-cluster", `e1=http://127.0.0.1:${etcdPeer}`
  ])
  await until("etcd", async () => {
    try {
      return (await fetch(`http://127.0.0.1:${etcdPort}/health`, { signal: AbortSignal.timeout(1000) })).ok
    } catch {
      return false
    }
  }, 30)
  for (const name of ["m1", "m2", "m3"]) {
    const member = { name, apiPort: await freePort(), pgPort: await freePort(), dataDir: Path.join(dir, name) }
    const config = Path.join(dir, `${name}.yml`)
    // JSON is YAML.
    Fs.writeFileSync(config, JSON.stringify(patroniConfig(member, etcdPort), null, 2))
    if (runAs.uid !== undefined) Fs.chownSync(config, runAs.uid, runAs.gid)
    members.push(member)
    member.patroni = start(name, patroni, [config], { ...runAs, cwd: dir })
    // The first member bootstraps alone; the others clone it.
    if (name === "m1") await until("m1 to lead", async () => leaderOf(await getCluster())?.state === "running", 90)
  }
  const healthy = await until("a leader and two streaming replicas", async () => {
    const cluster = await getCluster()
    const replicas = cluster?.members?.filter((m) => m.role !== "leader" && ["streaming", "running"].includes(m.state)) ?? []
    return leaderOf(cluster) && replicas.length === 2 ? cluster : undefined
  }, 120)
  log(`cluster up: ${JSON.stringify(healthy.members.map((m) => [m.name, m.role, m.state, m.port]))}`)
  const leader = leaderOf(healthy)
  const url = (m) => `postgres://postgres:scenario-pass@127.0.0.1:${m.pgPort}/postgres`
  const env = (table) => ({
    hosts: members.map(url),
    patroni: members.map((m) => `http://127.0.0.1:${m.apiPort}`),
    table
  })
  const lines = [line("effect3", env("scenario_effect3")), line("effect4", env("scenario_effect4"))]
  const failures = []
  for (const l of lines) {
    const wrote = Number((await l.saw("WRITE ", 120)).split(" ")[1])
    if (wrote !== leader.port) failures.push(`${l.name}: the first write landed on ${wrote}, not on Patroni's leader ${leader.port}`)
    await l.saw("READY", 60)
  }
  const victim = members.find((m) => m.pgPort === leader.port)
  log(`killing the leader ${victim.name} (Patroni and postmaster, SIGKILL)`)
  const pid = postmasterPid(victim)
  process.kill(-victim.patroni.pid, "SIGKILL")
  if (pid) process.kill(pid, "SIGKILL")
  for (const l of lines) l.child.stdin.write(`KILLED ${leader.port}\n`)
  const elected = await until("Patroni to elect a new leader", async () => {
    const next = leaderOf(await getCluster())
    return next && next.name !== victim.name && next.state === "running" ? next : undefined
  }, 120)
  log(`Patroni elected ${elected.name} (port ${elected.port})`)
  for (const l of lines) {
    const [, port, millis] = (await l.saw("FAILOVER ", 150)).split(" ")
    if (Number(port) !== elected.port) failures.push(`${l.name}: writes went to ${port}, not to the new leader ${elected.port}`)
    else log(`${l.name}: writes reach the new leader ${elected.name} ${millis} ms after the kill`)
    const code = await l.exited
    if (code !== 0) failures.push(`${l.name}: exited with code ${code}`)
  }
  return failures
}

let code = 1
try {
  const failures = await main()
  for (const failure of failures) console.error(`[scenario:patroni] FAILED ${failure}`)
  code = failures.length === 0 ? 0 : 1
  if (code === 0) log("passed: both lines followed Patroni's leader across a failover")
} catch (error) {
  console.error(`[scenario:patroni] FAILED ${error instanceof Error ? error.message : String(error)}`)
  console.error(`[scenario:patroni] logs: ${dir}/*.log (removed at teardown; copy them first with KEEP=1)`)
  if (process.env.KEEP === "1") tornDown = true
} finally {
  await teardown()
}
process.exit(code)

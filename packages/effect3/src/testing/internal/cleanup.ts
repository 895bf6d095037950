/** @internal */
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { signalServer } from "./process.js"

// Last line of defence: if the Node process exits without closing the scope
// (a crash, process.exit in a test runner), no server outlives it.
const liveGroups = new Set<number>()
const liveDirs = new Set<string>()
let hooked = false
const cleanUp = () => {
  for (const pid of liveGroups) signalServer(pid, "SIGKILL")
  for (const dir of liveDirs) Fs.rmSync(dir, { recursive: true, force: true })
  liveGroups.clear()
  liveDirs.clear()
}
const hook = () => {
  if (hooked) return
  hooked = true
  process.once("exit", cleanUp)
  // A signal ends Node without "exit": clean up, then let the signal do what
  // it would have done (unless someone else handles it).
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    const onSignal = () => {
      cleanUp()
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal)
    }
    process.once(signal, onSignal)
  }
}

/** Cluster directories are named after the process that owns them. @internal */
export const clusterDirPrefix = (): string => `pg-cluster-${process.pid}-`

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

/**
 * Removes what a process that died without cleaning up (SIGKILL) left: its
 * servers are killed (their postmaster.pid names the process group) and its
 * directories removed. Directories of live processes are never touched.
 * @internal
 */
export const sweepOrphans = (): void => {
  const root = Os.tmpdir()
  for (const entry of Fs.readdirSync(root)) {
    const match = /^pg-cluster-(\d+)-/.exec(entry)
    if (!match || alive(Number(match[1]))) continue
    const dir = Path.join(root, entry)
    try {
      for (const node of Fs.readdirSync(dir)) {
        const pidFile = Path.join(dir, node, "postmaster.pid")
        if (!Fs.existsSync(pidFile)) continue
        const pid = Number(Fs.readFileSync(pidFile, "utf8").split("\n")[0])
        if (pid > 0) signalServer(pid, "SIGKILL")
      }
      Fs.rmSync(dir, { recursive: true, force: true })
    } catch {
      // another process is sweeping it too
    }
  }
}
/** @internal */
export const track = (pid: number): void => {
  hook()
  liveGroups.add(pid)
}
/** @internal */
export const untrack = (pid: number): void => {
  liveGroups.delete(pid)
}

/** @internal */
export const trackDir = (dir: string): void => {
  hook()
  liveDirs.add(dir)
}
/** @internal */
export const untrackDir = (dir: string): void => {
  liveDirs.delete(dir)
}

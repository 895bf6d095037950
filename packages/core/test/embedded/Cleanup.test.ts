import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import * as Cleanup from "../../src/embedded/Cleanup.js"

// What a server's postmaster.pid and the kernel's segment list say, as the
// harness reads them to give back the shared memory of killed servers.

const pidFile = [
  "4242",
  "/tmp/pg-cluster-1-abc/primary",
  "1796412892",
  "54321",
  "/tmp",
  "127.0.0.1",
  "  2161680    229376",
  "ready   ",
  ""
].join("\n")

const shm = `       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap
   2161680     229376   600                    56  8760  8800      0   101   104   101   104 1796412893 1796412893 1796412892                  4096                     0
   2155673     163841   600                    56   711  1155      3   101   104   101   104 1796410761 1796410761 1796410743                  4096                     0
`

describe("embedded/Cleanup shared memory", () => {
  it("reads the segment a postmaster.pid names from its seventh line", () => {
    expect(Cleanup.segmentOf(pidFile)).toEqual({ key: 2161680, id: 229376 })
  })

  it("names no segment for a pid file cut short or without one", () => {
    expect(Cleanup.segmentOf(pidFile.split("\n").slice(0, 5).join("\n"))).toBeUndefined()
    expect(Cleanup.segmentOf(pidFile.replace("  2161680    229376", "        0         0"))).toBeUndefined()
  })

  it("lists the kernel's segments by id with their key and attachments", () => {
    const segments = Cleanup.parseSegments(shm)
    expect(segments.get(229376)).toEqual({ key: 2161680, attached: 0 })
    expect(segments.get(163841)).toEqual({ key: 2155673, attached: 3 })
    expect(segments.size).toBe(2)
    expect(Cleanup.parseSegments("").size).toBe(0)
  })

  it("removes a cluster directory whose pid files name no live segment", () => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "cleanup-test-"))
    Fs.mkdirSync(Path.join(dir, "primary"))
    // A segment id the kernel does not list: nothing to give back, the directory still goes.
    Fs.writeFileSync(Path.join(dir, "primary", "postmaster.pid"), pidFile.replace("229376", "999999999"))
    Cleanup.removeClusterDir(dir)
    expect(Fs.existsSync(dir)).toBe(false)
  })
})

import { describe, expect, it } from "vitest"
import { baseSettings, checkSettings, initdbArgs, optionSettings, renderSettings, templateDir } from "../../src/embedded/Template.js"

describe("checkSettings", () => {
  it("accepts no settings and ordinary ones", () => {
    expect(checkSettings({}, 2)).toBeUndefined()
    expect(checkSettings({ work_mem: "'8MB'", "auto_explain.log_min_duration": "0" }, 2)).toBeUndefined()
    expect(checkSettings({ max_connections: "'50'" }, 2)).toBeUndefined()
  })

  it("refuses a name that is not a setting name", () => {
    expect(checkSettings({ "work mem": "1" }, 2)).toEqual({ setting: "work mem", reason: "is not a setting name" })
    expect(checkSettings({ "1abc": "1" }, 2)?.reason).toBe("is not a setting name")
  })

  it("refuses a value that is not a string", () => {
    expect(checkSettings({ work_mem: 8 as unknown as string }, 2)).toEqual({
      setting: "work_mem",
      reason: "must be given as a string"
    })
  })

  it("refuses a line break in a value", () => {
    expect(checkSettings({ work_mem: "'8MB'\nfsync = on" }, 2)?.reason).toBe("has a line break in its value")
    expect(checkSettings({ work_mem: "'8MB'\r" }, 2)?.reason).toBe("has a line break in its value")
  })

  it("refuses settings the harness writes for each node", () => {
    for (const setting of ["port", "cluster_name", "primary_conninfo"]) {
      expect(checkSettings({ [setting]: "1" }, 2)).toEqual({ setting, reason: "is set by the harness for each node" })
    }
  })

  it("refuses standby-checked integers out of bounds or not integers", () => {
    expect(checkSettings({ max_connections: "0" }, 2)).toEqual({
      setting: "max_connections",
      reason: "must be an integer from 1 to 262143, got \"0\""
    })
    expect(checkSettings({ max_locks_per_transaction: "9" }, 2)?.setting).toBe("max_locks_per_transaction")
    expect(checkSettings({ max_worker_processes: "many" }, 2)?.setting).toBe("max_worker_processes")
    expect(checkSettings({ max_prepared_transactions: "262144" }, 2)?.setting).toBe("max_prepared_transactions")
    expect(checkSettings({ max_prepared_transactions: "262143" }, 2)).toBeUndefined()
  })

  it("refuses max_connections not above the reserved connections", () => {
    expect(checkSettings({ max_connections: "3" }, 2)).toEqual({
      setting: "max_connections",
      reason: "must be more than superuser_reserved_connections plus reserved_connections (3)"
    })
    expect(checkSettings({ max_connections: "10", reserved_connections: "7" }, 2)?.reason).toContain("(10)")
    expect(checkSettings({ max_connections: "11", reserved_connections: "7" }, 2)).toBeUndefined()
  })

  it("refuses fewer WAL senders than replicas", () => {
    expect(checkSettings({ max_wal_senders: "2" }, 3)).toEqual({
      setting: "max_wal_senders",
      reason: "must be at least the number of replicas (3): each streams over one"
    })
    expect(checkSettings({ max_wal_senders: "3" }, 3)).toBeUndefined()
    // The shared default (16) is checked too.
    expect(checkSettings({}, 17)?.setting).toBe("max_wal_senders")
  })
})

describe("settings", () => {
  it("renders postgresql.conf lines ending with a line break", () => {
    expect(renderSettings({ port: "5432", cluster_name: "'a'" })).toBe("port = 5432\ncluster_name = 'a'\n")
  })

  it("maps harness options to settings", () => {
    expect(optionSettings({})).toEqual({})
    expect(optionSettings({ walLevel: "logical" })).toEqual({ wal_level: "logical" })
  })

  it("shares settings that let replicas stream and the harness control the nodes", () => {
    expect(baseSettings["hot_standby"]).toBe("on")
    expect(baseSettings["listen_addresses"]).toBe("'127.0.0.1'")
    expect(checkSettings(baseSettings, 16)).toBeUndefined()
  })
})

describe("the template", () => {
  it("runs initdb into the given directory as postgres with trust authentication", () => {
    const args = initdbArgs("/tmp/x")
    expect(args.slice(0, 4)).toEqual(["-D", "/tmp/x", "-U", "postgres"])
    expect(args).toContain("--auth=trust")
    expect(args).toContain("--no-sync")
  })

  it("is one directory per PostgreSQL version", () => {
    expect(templateDir("/cache", "18.1")).toBe("/cache/template-18.1-v1")
    expect(templateDir("/cache", "18.1")).not.toBe(templateDir("/cache", "17.6"))
  })
})

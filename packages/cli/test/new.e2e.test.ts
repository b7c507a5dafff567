// End to end: pack the workspace packages, scaffold a project with `fiberbot new`, install it offline
// from the tarballs, then run its typecheck, its tests and its start script, as a user would.
import { execFileSync, spawn } from "node:child_process"
import { mkdirSync, mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { beforeAll, describe, expect, it } from "vitest"

const workspace = fileURLToPath(new URL("../../../", import.meta.url))
const bin = fileURLToPath(new URL("../bin/fiberbot.js", import.meta.url))
const node = process.execPath
const pnpm = (args: ReadonlyArray<string>, cwd: string) =>
  execFileSync("npx", ["-y", "pnpm@12.4.2", ...args], { cwd, encoding: "utf8", stdio: "pipe", timeout: 120_000 })

const root = mkdtempSync(join(tmpdir(), "fiberbot-e2e-"))
const tarballs = join(root, "tarballs")

beforeAll(() => {
  mkdirSync(tarballs)
  for (const pkg of ["core"]) {
    const dir = join(workspace, "packages", pkg)
    execFileSync(node, [join(workspace, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.build.json"], { cwd: dir, stdio: "pipe" })
    pnpm(["pack", "--pack-destination", tarballs], dir)
  }
}, 120_000)

/** Starts the project's `start` script, waits for `ready` in its output, sends SIGINT, returns code and output. */
const runStart = (cwd: string, ready: string) =>
  new Promise<{ code: number | null; out: string }>((resolve, reject) => {
    const child = spawn(node, ["src/main.ts"], { cwd, env: { ...process.env, LOG_PRETTY: "false" }, stdio: ["ignore", "pipe", "pipe"] })
    let out = ""
    let signalled = false
    const guard = setTimeout(() => child.kill("SIGKILL"), 30_000)
    const onData = (chunk: Buffer) => {
      out += chunk.toString()
      if (!signalled && out.includes(ready)) {
        signalled = true
        child.kill("SIGINT")
      }
    }
    child.stdout.on("data", onData)
    child.stderr.on("data", onData)
    child.on("error", reject)
    child.on("exit", (code) => {
      clearTimeout(guard)
      resolve({ code, out })
    })
  })

describe("fiberbot new (end to end)", () => {
  it("scaffolds a project that installs offline, typechecks, passes its tests and runs", async () => {
    const out = execFileSync(node, [bin, "new", "core-bot", "--dir", join(root, "core-bot"), "--fiberbot-tarballs", tarballs], { encoding: "utf8" })
    expect(out).toContain("created core-bot")
    const project = join(root, "core-bot")
    pnpm(["install", "--offline"], project)
    execFileSync(node, ["node_modules/typescript/bin/tsc", "--noEmit"], { cwd: project, stdio: "pipe" })
    const tests = execFileSync(node, ["node_modules/vitest/vitest.mjs", "run"], { cwd: project, encoding: "utf8", stdio: "pipe" })
    expect(tests).toMatch(/Tests\s+.*1 passed/)
    const started = await runStart(project, "running; press Ctrl-C")
    expect(started.out).toContain("bot stopped")
    expect(started.code).toBe(0)
  }, 180_000)
})

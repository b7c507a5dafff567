// End to end: pack the workspace packages, scaffold a project with `fiberbot new`, install it from
// the tarballs, then run its typecheck, its tests and its start script, as a user would.
// `--prefer-offline`: packages come from the local store the workspace install filled; the registry
// is asked only for metadata a machine has never cached (a strictly offline pnpm cannot resolve even
// exact versions without it).
import { execFileSync, spawn } from "node:child_process"
import { mkdirSync, mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { beforeAll, describe, expect, it } from "vitest"

const workspace = fileURLToPath(new URL("../../../", import.meta.url))
// the sources, not bin/ (which prefers dist/, possibly older than the sources in a workspace)
const bin = fileURLToPath(new URL("../src/main.ts", import.meta.url))
const node = process.execPath
const pnpm = (args: ReadonlyArray<string>, cwd: string) =>
  execFileSync("npx", ["-y", "pnpm@12.4.2", ...args], { cwd, encoding: "utf8", stdio: "pipe", timeout: 120_000 })

const root = mkdtempSync(join(tmpdir(), "fiberbot-e2e-"))
const tarballs = join(root, "tarballs")

beforeAll(() => {
  mkdirSync(tarballs)
  for (const pkg of ["core", "adapters", "testkit"]) {
    const dir = join(workspace, "packages", pkg)
    execFileSync(node, [join(workspace, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.build.json"], { cwd: dir, stdio: "pipe" })
    pnpm(["pack", "--pack-destination", tarballs], dir)
  }
}, 120_000)

/** Starts the project's `start` script, waits for `ready` in its output, sends SIGINT, returns code and output. */
const runStart = (cwd: string, ready: string) =>
  new Promise<{ code: number | null; out: string }>((resolve, reject) => {
    const child = spawn(node, ["src/main.ts"], { cwd, env: { ...process.env, LOG_PRETTY: "false", WS_PORT: "0" }, stdio: ["ignore", "pipe", "pipe"] })
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

const scaffoldAndRun = async (name: string, adapters: ReadonlyArray<string>, expectedTests: number) => {
  const project = join(root, name)
  const out = execFileSync(node, [bin, "new", name, "--dir", project, "--fiberbot-tarballs", tarballs, ...adapters.flatMap((a) => ["--adapter", a])], { encoding: "utf8" })
  expect(out).toContain(`created ${name}`)
  pnpm(["install", "--prefer-offline"], project)
  execFileSync(node, ["node_modules/typescript/bin/tsc", "--noEmit"], { cwd: project, stdio: "pipe" })
  const tests = execFileSync(node, ["node_modules/vitest/vitest.mjs", "run"], { cwd: project, encoding: "utf8", stdio: "pipe", env: { ...process.env, NO_COLOR: "1", FORCE_COLOR: "0" } })
    .replace(/\u001b\[[0-9;]*m/g, "")
  expect(tests).toMatch(new RegExp(`Tests\\s+${expectedTests} passed`))
  const started = await runStart(project, "bot started")
  expect(started.out).toContain("bot stopped")
  expect(started.code).toBe(0)
}

describe("fiberbot new (end to end)", () => {
  it("a project without adapters installs from the tarballs, typechecks, passes its tests and runs", () => scaffoldAndRun("core-bot", [], 1), 180_000)
  it("a Telegram project runs its tests and its start script against the emulator", () => scaffoldAndRun("tg-bot", ["telegram"], 2), 180_000)
  it("a Discord project runs its tests and its start script against the emulator", () => scaffoldAndRun("dc-bot", ["discord"], 2), 180_000)
  it("a WebSocket project runs its tests and its start script on 127.0.0.1", () => scaffoldAndRun("ws-bot", ["websocket"], 2), 180_000)
  it("a project with all three adapters runs one bot on all of them", () => scaffoldAndRun("all-bot", ["websocket", "telegram", "discord"], 4), 180_000)
})

import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"

const entry = fileURLToPath(new URL("../src/playground.ts", import.meta.url))

/** Runs the playground as `pnpm start` does, signals it once it runs, returns exit code and output. */
const runPlayground = (signal: NodeJS.Signals) =>
  new Promise<{ code: number | null; out: string }>((resolve, reject) => {
    const child = spawn(process.execPath, ["--conditions=@fiberbot/source", entry], {
      env: { ...process.env, LOG_PRETTY: "false", LOG_LEVEL: "info" },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let out = ""
    let signalled = false
    const kill = setTimeout(() => child.kill("SIGKILL"), 20_000)
    const onData = (chunk: Buffer) => {
      out += chunk.toString()
      // wait for a full round trip (a user's message answered by echo), then ask it to stop
      if (!signalled && out.includes("ws-echo answered") && out.includes("bot answered in #") && out.includes("[telegram] user 1000 ←")) {
        signalled = true
        child.kill(signal)
      }
    }
    child.stdout.on("data", onData)
    child.stderr.on("data", onData)
    child.on("error", reject)
    child.on("exit", (code) => {
      clearTimeout(kill)
      resolve({ code, out })
    })
  })

describe("playground (pnpm start)", () => {
  it.each(["SIGINT", "SIGTERM"] as const)("runs its bots offline and stops every one of them on %s", async (signal) => {
    const { code, out } = await runPlayground(signal)
    expect(out).toContain(`${signal}: stopping every bot`)
    const reports = JSON.parse(out.split("\n").find((l) => l.startsWith("[{\"bot\""))!) as Array<{ bot: string; withinDeadline: boolean }>
    expect(reports.map((r) => r.bot).sort()).toEqual(["discord", "discord-users", "status", "telegram-echo", "ws-echo", "ws-users"])
    expect(reports.every((r) => r.withinDeadline)).toBe(true)
    expect(code).toBe(0)
  })
})

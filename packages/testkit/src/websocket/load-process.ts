// fiberbot:edge the load generator's own process entry point (raw timers drive the load)
/**
 * load-process: a WebSocket load generator that runs in its own process, so its cost never shows in
 * the measured server's process. Spawned by `LoadGen.spawn` with one JSON argument; prints JSON
 * lines (progress, then one `{"done":true,...}` result) and exits by itself.
 *
 * Modes:
 * - `echo`: `connections` clients, each with one message of `size` bytes in flight, for `seconds`;
 *   reports echoes per second and latency percentiles.
 * - `churn`: keeps `connections` open for `seconds`, each living a random lifetime and then ending
 *   one of four ways (clean close, `socket.destroy()`, never reading while sending, no longer
 *   answering pings), replaced at once by a new one.
 * - `idle`: opens `connections` and holds them idle until `seconds` pass or stdin says "stop".
 *
 * Loopback only, at most 20,000 connections and 600 seconds.
 */
import { WebSocket } from "ws"

export interface Options {
  readonly url: string
  readonly mode: "echo" | "churn" | "idle"
  readonly connections: number
  readonly seconds: number
  /** Bytes per echo message (default 64). */
  readonly size?: number
  /** Churn: messages per second each connection sends (default 2). */
  readonly rate?: number
  /** Churn: connection lifetime range in ms (default 200..1500). */
  readonly lifeMs?: readonly [number, number]
  /** Churn: weights of clean / destroy / never-read / no-pong endings (default equal). */
  readonly mix?: readonly [number, number, number, number]
  /** Connections opened at once while ramping up (default 200). */
  readonly ramp?: number
}

const MAX_CONNECTIONS = 20_000
const MAX_SECONDS = 600

const print = (o: object) => process.stdout.write(JSON.stringify(o) + "\n")

const percentile = (sorted: ArrayLike<number>, p: number) =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!

const checkOptions = (o: Options) => {
  const host = new URL(o.url).hostname
  if (!["127.0.0.1", "localhost", "[::1]", "::1"].includes(host)) throw new Error(`loopback only, not ${host}`)
  if (!(o.connections > 0 && o.connections <= MAX_CONNECTIONS)) throw new Error(`connections must be 1..${MAX_CONNECTIONS}`)
  if (!(o.seconds > 0 && o.seconds <= MAX_SECONDS)) throw new Error(`seconds must be in (0, ${MAX_SECONDS}]`)
}

const open = (url: string) =>
  new Promise<WebSocket>((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false })
    ws.once("open", () => resolve(ws))
    ws.once("error", reject)
    ws.once("unexpected-response", (_r, res) => reject(new Error(`HTTP ${res.statusCode}`)))
  })

/** Opens `n` connections, at most `ramp` handshakes in flight. */
const openMany = async (url: string, n: number, ramp: number) => {
  const out: Array<WebSocket> = []
  let failed = 0
  for (let i = 0; i < n; i += ramp) {
    const batch = await Promise.allSettled(Array.from({ length: Math.min(ramp, n - i) }, () => open(url)))
    for (const r of batch) r.status === "fulfilled" ? out.push(r.value) : failed++
  }
  return { sockets: out, failed }
}

const echo = async (o: Options) => {
  const payload = "x".repeat(o.size ?? 64)
  const { sockets, failed } = await openMany(o.url, o.connections, o.ramp ?? 200)
  const latencies = new Float64Array(4_000_000)
  let count = 0
  let running = true
  const started = performance.now()
  for (const ws of sockets) {
    let sentAt = 0
    const fire = () => {
      sentAt = performance.now()
      ws.send(payload)
    }
    ws.on("message", () => {
      if (count < latencies.length) latencies[count] = performance.now() - sentAt
      count++
      if (running) fire()
    })
    ws.on("error", () => {})
    fire()
  }
  await new Promise((r) => setTimeout(r, o.seconds * 1000))
  running = false
  const elapsed = (performance.now() - started) / 1000
  const sorted = latencies.subarray(0, Math.min(count, latencies.length)).sort()
  for (const ws of sockets) ws.terminate()
  return {
    opened: sockets.length,
    failed,
    echoed: count,
    perSecond: count / elapsed,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99)
  }
}

type Ending = "clean" | "destroy" | "never-read" | "no-pong"
const ENDINGS: ReadonlyArray<Ending> = ["clean", "destroy", "never-read", "no-pong"]

const churn = async (o: Options) => {
  const [minLife, maxLife] = o.lifeMs ?? [200, 1500]
  const mix = o.mix ?? [1, 1, 1, 1]
  const total = mix.reduce((a, b) => a + b, 0)
  const rate = o.rate ?? 2
  const deadline = performance.now() + o.seconds * 1000
  const counts = { opened: 0, failed: 0, echoed: 0, sent: 0, clean: 0, destroy: 0, "never-read": 0, "no-pong": 0 }
  const live = new Set<WebSocket>()
  const pick = (): Ending => {
    let r = Math.random() * total
    for (let i = 0; i < ENDINGS.length; i++) {
      r -= mix[i]!
      if (r < 0) return ENDINGS[i]!
    }
    return "clean"
  }

  const one = async (): Promise<void> => {
    let ws: WebSocket
    try {
      ws = await open(o.url)
    } catch {
      counts.failed++
      await new Promise((r) => setTimeout(r, 20))
      return
    }
    counts.opened++
    live.add(ws)
    const ending = pick()
    counts[ending]++
    ws.on("error", () => {})
    ws.on("message", () => counts.echoed++)
    if (ending === "never-read") ws.pause()
    if (ending === "no-pong") (ws as unknown as { pong: () => void }).pong = () => {}
    const sender = setInterval(() => {
      if (ws.readyState !== WebSocket.OPEN) return
      ws.send(ending === "never-read" ? "z".repeat(4096) : "hello")
      counts.sent++
    }, 1000 / rate)
    const life = minLife + Math.random() * (maxLife - minLife)
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        if (ending === "clean") ws.close(1000)
        else ws.terminate() // the peer vanishes: destroy() of the socket, no close frame
        resolve()
      }, life)
      ws.once("close", () => {
        clearTimeout(timer)
        resolve()
      })
    })
    clearInterval(sender)
    // a clean close waits for the server's answer (bounded), so the next one does not pile up
    if (ending === "clean" && ws.readyState !== WebSocket.CLOSED) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          ws.terminate()
          resolve()
        }, 2000)
        ws.once("close", () => {
          clearTimeout(t)
          resolve()
        })
      })
    }
    live.delete(ws)
  }

  const slot = async () => {
    while (performance.now() < deadline) await one()
  }
  const progress = setInterval(() => print({ progress: true, live: live.size, ...counts }), 1000)
  // ramp up in batches so the server's accept queue is not flooded
  const ramp = o.ramp ?? 200
  const slots: Array<Promise<void>> = []
  for (let i = 0; i < o.connections; i++) {
    slots.push(slot())
    if ((i + 1) % ramp === 0) await new Promise((r) => setTimeout(r, 50))
  }
  await Promise.all(slots)
  clearInterval(progress)
  for (const ws of live) ws.terminate()
  return counts
}

const idle = async (o: Options) => {
  const { sockets, failed } = await openMany(o.url, o.connections, o.ramp ?? 200)
  for (const ws of sockets) ws.on("error", () => {})
  print({ ready: true, opened: sockets.length, failed })
  await new Promise<void>((resolve) => {
    const t = setTimeout(resolve, o.seconds * 1000)
    process.stdin.on("data", (d) => {
      if (d.toString().includes("stop")) {
        clearTimeout(t)
        resolve()
      }
    })
  })
  process.stdin.pause()
  for (const ws of sockets) ws.terminate()
  return { opened: sockets.length, failed }
}

const main = async () => {
  const o = JSON.parse(process.argv[2] ?? "{}") as Options
  checkOptions(o)
  // a hard stop, whatever happens: the generator never outlives its time budget by much
  setTimeout(() => {
    print({ done: true, error: "hard deadline" })
    process.exit(2)
  }, (o.seconds + 30) * 1000).unref()
  const result = o.mode === "echo" ? await echo(o) : o.mode === "churn" ? await churn(o) : await idle(o)
  print({ done: true, mode: o.mode, ...result })
  process.exit(0)
}

main().catch((e) => {
  print({ done: true, error: e instanceof Error ? e.message : String(e) })
  process.exit(1)
})

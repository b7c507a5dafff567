// fiberbot:edge a benchmark process entry point
/**
 * ws-callback: what one WebSocket message costs the server's process without the network, to
 * find where ws-echo's cost is. A diagnostic, not a goal: the fiberbot echo bot and the bare `ws`
 * echo server each get 100 real connections, then the server side's `ws` objects are driven
 * directly: their `message` event is emitted with a 64-byte text frame (in bursts of one frame per
 * connection, the event loop turning every ten bursts) and `send` is replaced by a counter. So
 * what is measured is everything between `ws` parsing a frame and handing the reply to `send`:
 * wall time and CPU time per message (CPU includes the GC's helper threads).
 *
 * Options: --messages N per round (default 100000), --rounds N per side (default 3), --handler
 * reply|ignore|void (default reply: `ctx.reply(ctx.text)`; ignore: `Effect.ignore` around it;
 * void: `Effect.void`, no reply), --no-registry (the fiber registry off, to see its share),
 * --metrics (handler metrics on, a bot's default; the ws benchmarks run without them).
 */
import { Effect, Layer } from "effect"
import { WebSocket, WebSocketServer } from "ws"
import { Bot, BotManager, Logging, Router } from "@fiberbot/core"
import { Server } from "@fiberbot/adapters/websocket"
import { arg, bareEcho, median, round } from "./ws/common.ts"

const messages = arg("messages", 100_000)
const rounds = arg("rounds", 3)
const handlerIndex = process.argv.indexOf("--handler")
const handlerName = handlerIndex >= 0 ? process.argv[handlerIndex + 1] : "reply"
/** `--no-registry`: the fiber registry off, to see its share. */
const registry = !process.argv.includes("--no-registry")
/** `--metrics`: handler metrics on (the default of a bot; the ws benchmarks run without them). */
const metrics = process.argv.includes("--metrics")
const CONNECTIONS = 100

// The server-side `ws` object of each connection, taken as the server makes it.
let accepted: Array<WebSocket> = []
const handleUpgrade = WebSocketServer.prototype.handleUpgrade
WebSocketServer.prototype.handleUpgrade = function(this: WebSocketServer, req, socket, head, done) {
  return handleUpgrade.call(this, req, socket, head, (ws, request) => {
    accepted.push(ws)
    done(ws, request)
  })
}

const handlers = {
  reply: Router.empty.on("message", (ctx) => ctx.reply(ctx.text ?? "")),
  ignore: Router.empty.on("message", (ctx) => Effect.ignore(ctx.reply(ctx.text ?? ""))),
  void: Router.empty.on("message", () => Effect.void)
}
const router = handlers[handlerName as keyof typeof handlers]
if (router === undefined) throw new Error(`--handler must be one of ${Object.keys(handlers).join(", ")}`)

interface Figures {
  readonly wallMicros: number
  readonly cpuMicros: number
}



const connectAll = (url: string) =>
  Effect.acquireRelease(
    Effect.promise(() =>
      Promise.all(Array.from({ length: CONNECTIONS }, () =>
        new WebSocket(url)).map((ws) => new Promise<WebSocket>((resolve) => ws.once("open", () => resolve(ws)))))
    ),
    (clients) => Effect.sync(() => clients.forEach((c) => c.terminate()))
  )

/** Connects 100 clients to `url` and answers the server's side of each, its `send` a counter. */
const serverSides = (url: string) =>
  Effect.gen(function*() {
    accepted = []
    yield* connectAll(url)
    while (accepted.length < CONNECTIONS) yield* Effect.promise(() => new Promise((r) => setTimeout(r, 5)))
    const sides = { sockets: accepted, sent: 0 }
    for (const ws of sides.sockets) {
      ws.send = (() => {
        sides.sent++
      }) as typeof ws.send
    }
    return sides
  })

const frame = Buffer.alloc(64, "x")

/** One round on one server: `messages` frames, a burst of one per connection, the loop turning every ten bursts. */
const round1 = async (sides: { readonly sockets: ReadonlyArray<WebSocket>; sent: number }): Promise<Figures> => {
  globalThis.gc?.()
  sides.sent = 0
  const t0 = performance.now()
  const cpu0 = process.cpuUsage()
  for (let i = 0, burst = 0; i < messages; i += CONNECTIONS, burst++) {
    // a fresh Buffer per frame, as `ws` hands one over per message
    for (let j = 0; j < CONNECTIONS && i + j < messages; j++) sides.sockets[j]!.emit("message", Buffer.from(frame), false)
    if (burst % 10 === 9) await new Promise((resolve) => setImmediate(resolve))
  }
  await new Promise((resolve) => setImmediate(resolve))
  const wall = performance.now() - t0
  const cpu = process.cpuUsage(cpu0)
  if (handlerName !== "void" && sides.sent !== messages) throw new Error(`expected ${messages} replies, got ${sides.sent}`)
  return { wallMicros: (wall * 1000) / messages, cpuMicros: (cpu.user + cpu.system) / messages }
}

const summary = (xs: ReadonlyArray<Figures>): Figures => ({
  wallMicros: round(median(xs.map((f) => f.wallMicros))),
  cpuMicros: round(median(xs.map((f) => f.cpuMicros)))
})

const main = Effect.gen(function*() {
  console.log(`ws-callback: ${messages} messages per round, ${rounds} rounds per side (alternating), handler "${handlerName}", fiber registry ${registry ? "on" : "off"}, handler metrics ${metrics ? "on" : "off"}, no network`)
  const manager = yield* BotManager
  const ws = Server.make({ outbound: { capacity: 1024 } })
  yield* manager.start(Bot.make({
    name: "ws-callback",
    adapters: [ws.adapter],
    router,
    options: { concurrency: 2000, intake: { capacity: 10_000 }, metrics }
  }))
  const fiberbotSides = yield* serverSides(ws.url()!)
  const { url } = yield* bareEcho
  const bareSides = yield* serverSides(url)
  const figures = yield* Effect.promise(async () => {
    const out = { fiberbot: [] as Array<Figures>, bare: [] as Array<Figures> }
    // a warm-up round each, then alternating rounds, so drift of the machine hits both alike
    await round1(fiberbotSides)
    await round1(bareSides)
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? (["fiberbot", "bare"] as const) : (["bare", "fiberbot"] as const)
      for (const side of order) out[side].push(await round1(side === "fiberbot" ? fiberbotSides : bareSides))
    }
    return out
  })
  yield* manager.stop("ws-callback", { deadline: "5 seconds" })
  const fb = summary(figures.fiberbot)
  const b = summary(figures.bare)
  const line = (f: Figures) => `${f.wallMicros} µs wall, ${f.cpuMicros} µs CPU per message`
  console.log(`  fiberbot ${line(fb)}`)
  console.log(`  bare ws  ${line(b)}`)
  console.log(JSON.stringify({ bench: "ws-callback", messages, rounds, handler: handlerName, registry, metrics, fiberbot: fb, bare: b, node: process.version }))
}).pipe(Effect.scoped, Effect.provide(Layer.fresh(registry ? BotManager.layer : BotManager.layerWith({ fiberRegistry: false }))))

Effect.runPromise(main.pipe(Effect.provide(Logging.layer({ level: "warn" })))).then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)

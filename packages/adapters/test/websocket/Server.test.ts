import * as http from "node:http"
import * as net from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Exit, Schedule, Schema } from "effect"
import { Bot, BotManager, Router } from "@fiberbot/core"
import { Codec, Server } from "@fiberbot/adapters/websocket"
import { client, closedWithin, echoBot, rawUpgrade, refusedStatus, sleep, slowloris, until, upgradeRequest, withManager } from "./helpers.ts"

const listening = (server: http.Server) =>
  Effect.promise(() => new Promise<number>((r) => server.listen(0, "127.0.0.1", () => r((server.address() as net.AddressInfo).port))))
const closeServer = (server: http.Server) => Effect.promise(() => new Promise<void>((r) => server.close(() => r())))

describe("WebSocket server", () => {
  it.live("echoes to the sending connection only; open, message and close reach the bot; stop sends 1001 to every connection", () =>
    withManager(Effect.gen(function*() {
      const manager = yield* BotManager
      const ws = Server.make({ port: 0 })
      const kinds: Array<string> = []
      const bot = Bot.make({
        name: "echo",
        adapters: [ws.adapter],
        router: Router.empty
          .on("open", (ctx) => Effect.sync(() => kinds.push(`open ${ctx.update.key}`)))
          .on("close", (ctx) => Effect.sync(() => kinds.push(`close ${ctx.update.key}`)))
          .on("message", (ctx) => ctx.reply(`echo: ${ctx.text}`))
      })
      yield* manager.start(bot)
      assert.strictEqual(ws.address()?.address, "127.0.0.1")
      assert.isAbove(ws.address()?.port ?? 0, 0)
      const a = yield* client(ws.url()!)
      const b = yield* client(ws.url()!)
      a.ws.send("hello")
      assert.strictEqual(yield* a.next(), "echo: hello")
      b.ws.send("other")
      assert.strictEqual(yield* b.next(), "echo: other")
      assert.strictEqual(a.received.length, 1)
      a.ws.close(1000)
      yield* closedWithin(a)
      yield* until(() => kinds.includes("close c1"))
      assert.includeMembers(kinds, ["open c1", "open c2", "close c1"])
      assert.strictEqual(ws.stats().open, 1)

      const report = yield* manager.stop("echo", { deadline: "3 seconds" })
      assert.isTrue(report.withinDeadline, report.unfinished.join(", "))
      const closed = yield* closedWithin(b)
      assert.strictEqual(closed.code, 1001)
      assert.strictEqual(ws.stats().open, 0)
      assert.strictEqual(ws.stats().sockets, 0)
      assert.strictEqual(ws.stats().closeCodes[1001], 1)
      // the stop report carries the adapter's own figures: how each connection ended
      const figures = report.adapters?.ws as { readonly open: number; readonly closeCodes: Record<string, number> } | undefined
      assert.strictEqual(figures?.open, 0)
      assert.strictEqual(figures?.closeCodes[1001], 1)
      assert.strictEqual(manager.registry.snapshot({ bot: "echo" }).total, 0)
    })))

  it.live("attaches to an existing http.Server and takes only its path", () =>
    withManager(Effect.gen(function*() {
      const manager = yield* BotManager
      const httpServer = http.createServer((_req, res) => res.end("plain http"))
      yield* Effect.promise(() => new Promise<void>((r) => httpServer.listen(0, "127.0.0.1", r)))
      const port = (httpServer.address() as { port: number }).port
      const ws = Server.make({ attach: httpServer, path: "/bot" })
      yield* manager.start(echoBot(ws.adapter))
      const c = yield* client(`ws://127.0.0.1:${port}/bot`)
      c.ws.send("ping")
      assert.strictEqual(yield* c.next(), "ping")
      // plain HTTP requests stay the server's own
      const other = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/`).then((r) => r.text()))
      assert.strictEqual(other, "plain http")
      yield* manager.stop("echo", { deadline: "3 seconds" })
      assert.strictEqual((yield* closedWithin(c)).code, 1001)
      // the user's server is still theirs and still listening
      assert.isTrue(httpServer.listening)
      yield* Effect.promise(() => new Promise<void>((r) => httpServer.close(() => r())))
    })))

  it.live("attached, with no other upgrade listener: an upgrade for another path gets 404 and its socket is closed", () =>
    withManager(Effect.gen(function*() {
      const manager = yield* BotManager
      const httpServer = http.createServer((_req, res) => res.end("plain http"))
      const port = yield* listening(httpServer)
      const ws = Server.make({ attach: httpServer, path: "/bot" })
      yield* manager.start(echoBot(ws.adapter))
      // before: no answer, and the socket stayed open for good
      const answer = yield* rawUpgrade(port, "/elsewhere")
      assert.match(answer, /^HTTP\/1\.1 404 Not Found\r\n/)
      const c = yield* client(`ws://127.0.0.1:${port}/bot`)
      c.ws.send("ping")
      assert.strictEqual(yield* c.next(), "ping")
      yield* manager.stop("echo", { deadline: "3 seconds" })
      assert.strictEqual((yield* closedWithin(c)).code, 1001)
      assert.strictEqual(ws.stats().sockets, 0)
      yield* closeServer(httpServer)
    })))

  it.live("attached: an upgrade for another path is left to the server's other upgrade listener, and its peer resetting it is no uncaught error", () =>
    withManager(Effect.gen(function*() {
      const manager = yield* BotManager
      const httpServer = http.createServer()
      // a listener that takes its path and, like many, adds no 'error' listener of its own
      const taken = yield* Deferred.make<net.Socket>()
      httpServer.on("upgrade", (req: http.IncomingMessage, socket: net.Socket) => {
        if (req.url === "/theirs") Deferred.doneUnsafe(taken, Exit.succeed(socket))
      })
      const port = yield* listening(httpServer)
      const ws = Server.make({ attach: httpServer, path: "/bot" })
      yield* manager.start(echoBot(ws.adapter))
      const raw = net.connect(port, "127.0.0.1", () => raw.write(upgradeRequest("/theirs")))
      raw.on("error", () => {})
      const socket = yield* Deferred.await(taken).pipe(Effect.timeout(Duration.seconds(2)), Effect.orDie)
      // both listeners have run by now: ours must not have answered or closed it
      assert.isFalse(socket.destroyed)
      const serverSideClosed = Effect.callback<void>((resume) => {
        if (socket.destroyed) resume(Effect.void)
        else socket.once("close", () => resume(Effect.void))
      }).pipe(Effect.timeout(Duration.seconds(2)), Effect.orDie)
      // before: Node had taken its error listener off, so this reset was an uncaught ECONNRESET
      // (vitest fails the run on it)
      raw.resetAndDestroy()
      yield* serverSideClosed
      yield* manager.stop("echo", { deadline: "3 seconds" })
      yield* closeServer(httpServer)
    })))

  it.live("an oversized frame closes that connection with 1009; the others go on", () =>
    withManager(Effect.gen(function*() {
      const manager = yield* BotManager
      const ws = Server.make({ maxPayload: 1024 })
      yield* manager.start(echoBot(ws.adapter))
      const big = yield* client(ws.url()!)
      const ok = yield* client(ws.url()!)
      big.ws.send("x".repeat(2048))
      assert.strictEqual((yield* closedWithin(big)).code, 1009)
      ok.ws.send("still here")
      assert.strictEqual(yield* ok.next(), "still here")
      yield* manager.stop("echo", { deadline: "3 seconds" })
    })))

  it.live("invalid UTF-8 in a text frame closes with 1007", () =>
    withManager(Effect.gen(function*() {
      const manager = yield* BotManager
      const ws = Server.make()
      yield* manager.start(echoBot(ws.adapter))
      const c = yield* client(ws.url()!)
      c.ws.send(Buffer.from([0xff, 0xfe, 0x80]), { binary: false })
      assert.strictEqual((yield* closedWithin(c)).code, 1007)
      yield* until(() => ws.stats().open === 0)
      yield* manager.stop("echo", { deadline: "3 seconds" })
    })))

  it.live("binary frames are refused with 1003 when the server takes text only", () =>
    withManager(Effect.gen(function*() {
      const manager = yield* BotManager
      const ws = Server.make({ binary: "reject" })
      yield* manager.start(echoBot(ws.adapter))
      const c = yield* client(ws.url()!)
      c.ws.send(Buffer.from([1, 2, 3]))
      assert.strictEqual((yield* closedWithin(c)).code, 1003)
      yield* manager.stop("echo", { deadline: "3 seconds" })
    })))

  it.live("JSON codec: a malformed message closes with 1007, or gets an error frame and the connection goes on", () =>
    withManager(Effect.gen(function*() {
      const manager = yield* BotManager
      const Msg = Schema.Struct({ say: Schema.String })
      const strict = Server.make({ name: "strict", codec: Codec.json(Msg) })
      const lenient = Server.make({ name: "lenient", codec: Codec.json(Msg, { onMalformed: "error-frame" }) })
      const bot = Bot.make({
        name: "json",
        adapters: [strict.adapter, lenient.adapter],
        router: Router.empty.on("message", (ctx) => {
          const p = ctx.update.payload as Server.MessagePayload<typeof Msg.Type>
          return ctx.reply({ extra: { json: { heard: (p.data as typeof Msg.Type).say } } })
        })
      })
      yield* manager.start(bot)
      const s = yield* client(strict.url()!)
      s.ws.send('{"say":"hi"}')
      assert.strictEqual(yield* s.next(), '{"heard":"hi"}')
      s.ws.send("{not json")
      assert.strictEqual((yield* closedWithin(s)).code, 1007)

      const l = yield* client(lenient.url()!)
      l.ws.send('{"say":42}')
      const error = JSON.parse(String(yield* l.next()))
      assert.strictEqual(error.error, "malformed message")
      l.ws.send('{"say":"again"}')
      assert.strictEqual(yield* l.next(), '{"heard":"again"}')
      yield* manager.stop("json", { deadline: "3 seconds" })
      assert.strictEqual((yield* closedWithin(l)).code, 1001)
    })))

  it.live("more inbound messages per second than allowed closes with 1008", () =>
    withManager(Effect.gen(function*() {
      const manager = yield* BotManager
      const ws = Server.make({ ratePerSecond: 10 })
      yield* manager.start(echoBot(ws.adapter))
      const c = yield* client(ws.url()!)
      for (let i = 0; i < 50; i++) c.ws.send(`m${i}`)
      const closed = yield* closedWithin(c)
      assert.strictEqual(closed.code, 1008)
      assert.isBelow(c.received.length, 50)
      yield* manager.stop("echo", { deadline: "3 seconds" })
    })))

  describe("a close while reading is paused (bot behind) still reads the peer's close reply", () => {
    // One run at a time and one update queued: with the bot stuck, a burst waits in the
    // connection's buffer, and past inboundCapacity reading pauses.
    const behind = (name: string, ws: Server.WebSocketServerAdapter, gate: Deferred.Deferred<void>, held: Deferred.Deferred<void>) =>
      Bot.make({
        name,
        adapters: [ws.adapter],
        router: Router.empty.on("message", () => Effect.andThen(Deferred.succeed(held, undefined), Deferred.await(gate))),
        options: { concurrency: 1, intake: { capacity: 1 }, handlerTimeout: "10 seconds" }
      })
    const pauseReading = (ws: Server.WebSocketServerAdapter, held: Deferred.Deferred<void>) =>
      Effect.gen(function*() {
        const c = yield* client(ws.url()!)
        c.ws.send("hold")
        yield* Deferred.await(held)
        for (let i = 0; i < 50; i++) c.ws.send(`m${i}`)
        yield* until(() => c.ws.bufferedAmount === 0)
        // the server answers a later upgrade only after it read what was already in its socket
        const other = yield* client(ws.url()!)
        return { c, other }
      })

    it.live("close(): a clean close, not a terminate at closeTimeout", () =>
      withManager(Effect.gen(function*() {
        const manager = yield* BotManager
        const gate = yield* Deferred.make<void>()
        const held = yield* Deferred.make<void>()
        const ws = Server.make({ inboundCapacity: 4, closeTimeout: "3 seconds", heartbeat: false })
        yield* manager.start(behind("behind", ws, gate, held))
        const { c } = yield* pauseReading(ws, held)
        yield* ws.close("c1", 1000, "bye")
        // the close update waits for room in the intake: let the bot catch up
        yield* Deferred.succeed(gate, undefined)
        // before: the reply was never read, so the server terminated at closeTimeout (3 s)
        assert.strictEqual((yield* closedWithin(c, 1500)).code, 1000)
        yield* until(() => ws.stats().open === 1)
        assert.deepStrictEqual([ws.stats().closedClean, ws.stats().terminated], [1, 0])
        yield* manager.stop("behind", { deadline: "3 seconds" })
        assert.strictEqual(ws.stats().sockets, 0)
      })))

    it.live("stop (1001) with the bot stuck: clean closes within the deadline, not terminates at closeTimeout", () =>
      withManager(Effect.gen(function*() {
        const manager = yield* BotManager
        const stuck = yield* Deferred.make<void>()
        const held = yield* Deferred.make<void>()
        const ws = Server.make({ inboundCapacity: 4, closeTimeout: "2 seconds", heartbeat: false })
        yield* manager.start(behind("stuck", ws, stuck, held))
        const { c } = yield* pauseReading(ws, held)
        const report = yield* manager.stop("stuck", { deadline: "5 seconds", drain: "50 millis" })
        assert.isTrue(report.withinDeadline, report.unfinished.join(", "))
        // before: a terminate after the 2 s closeTimeout
        assert.isBelow(report.durationMs, 1000)
        assert.strictEqual((yield* closedWithin(c)).code, 1001)
        const figures = report.adapters?.ws as { readonly closedClean: number; readonly terminated: number } | undefined
        assert.deepStrictEqual([figures?.closedClean, figures?.terminated], [2, 0])
        assert.strictEqual(ws.stats().sockets, 0)
      })))
  })

  it.live("close() refuses a code no endpoint may send with CloseCodeError and keeps the connection; a long reason is cut at a character boundary", () =>
    withManager(Effect.gen(function*() {
      const manager = yield* BotManager
      const ws = Server.make({ heartbeat: false })
      const reasons: Array<string | undefined> = []
      yield* manager.start(Bot.make({
        name: "echo",
        adapters: [ws.adapter],
        router: Router.empty
          .on("message", (ctx) => ctx.reply(ctx.text ?? ""))
          .on("close", (ctx) => Effect.sync(() => reasons.push((ctx.update.payload as Server.LifecyclePayload).reason)))
      }))
      const c = yield* client(ws.url()!)
      yield* until(() => ws.stats().open === 1)
      for (const code of [1005, 1006, 1004, 1015, 999, 2999, 5000, 1000.5]) {
        const error = yield* Effect.flip(ws.close("c1", code))
        assert.strictEqual(error._tag, "CloseCodeError")
        assert.strictEqual(error.code, code)
      }
      // before: ws.close threw in the closer, the connection left the map and its socket stayed open
      c.ws.send("still open")
      assert.strictEqual(yield* c.next(), "still open")
      assert.deepStrictEqual(ws.connections(), ["c1"])

      const reason = "é".repeat(100) // 200 bytes in UTF-8; a close frame takes 123
      yield* ws.close("c1", 4000, reason)
      const closed = yield* closedWithin(c, 1500)
      assert.strictEqual(closed.code, 4000)
      assert.strictEqual(closed.reason, "é".repeat(61)) // 122 bytes: the 62nd "é" would split at 123
      yield* until(() => ws.stats().open === 0)
      assert.strictEqual(ws.stats().closedClean, 1)
      yield* until(() => reasons.length === 1)
      assert.deepStrictEqual(reasons, ["é".repeat(61)])
      yield* manager.stop("echo", { deadline: "3 seconds" })
      assert.strictEqual(ws.stats().sockets, 0)
    })))

  it.live("an upgrade flood beyond maxConnections gets HTTP 503; admitted connections keep working", () =>
    withManager(Effect.gen(function*() {
      const manager = yield* BotManager
      const ws = Server.make({ maxConnections: 5 })
      yield* manager.start(echoBot(ws.adapter))
      const admitted = yield* Effect.all(Array.from({ length: 5 }, () => client(ws.url()!)))
      yield* until(() => ws.stats().open === 5)
      const statuses = yield* Effect.all(Array.from({ length: 20 }, () => refusedStatus(ws.url()!)), { concurrency: "unbounded" })
      assert.deepStrictEqual([...new Set(statuses)], [503])
      assert.strictEqual(ws.stats().refused, 20)
      admitted[0]!.ws.send("alive")
      assert.strictEqual(yield* admitted[0]!.next(), "alive")
      yield* manager.stop("echo", { deadline: "3 seconds" })
      assert.strictEqual(ws.stats().sockets, 0)
    })))

  it.live("a half-open handshake (slowloris) is cut off after the handshake timeout", () =>
    withManager(Effect.gen(function*() {
      const manager = yield* BotManager
      const ws = Server.make({ handshakeTimeout: "300 millis" })
      yield* manager.start(echoBot(ws.adapter))
      const tooSlow = yield* Effect.all(Array.from({ length: 5 }, () => slowloris(ws.address()!.port)), { concurrency: "unbounded" })
      for (const ms of tooSlow) {
        assert.isAtLeast(ms, 250)
        assert.isBelow(ms, 2000)
      }
      const c = yield* client(ws.url()!)
      c.ws.send("fine")
      assert.strictEqual(yield* c.next(), "fine")
      yield* manager.stop("echo", { deadline: "3 seconds" })
      assert.strictEqual(ws.stats().sockets, 0)
    })))

  it.live("a client that never reads is closed as a slow consumer (1008 policy), the others go on", () =>
    withManager(Effect.gen(function*() {
      const manager = yield* BotManager
      const ws = Server.make({
        outbound: { policy: "close", capacity: 16, grace: "200 millis", highWaterMark: 64 * 1024 },
        closeTimeout: "200 millis"
      })
      const chunk = "y".repeat(64 * 1024)
      const bot = Bot.make({
        name: "flood",
        adapters: [ws.adapter],
        router: Router.empty.on("message", (ctx) =>
          ctx.text === "flood"
            ? Effect.ignore(Effect.forEach(Array.from({ length: 400 }), () => ctx.reply(chunk), { discard: true }))
            : ctx.reply(ctx.text ?? ""))
      })
      yield* manager.start(bot)
      const stuck = yield* client(ws.url()!)
      const ok = yield* client(ws.url()!)
      stuck.ws.pause() // stops reading: the kernel buffers fill, then bufferedAmount grows
      stuck.ws.send("flood")
      yield* until(() => ws.stats().open === 1, 5000)
      assert.strictEqual(ws.stats().closeCodes[1008], 1)
      ok.ws.send("fine")
      assert.strictEqual(yield* ok.next(), "fine")
      stuck.ws.terminate()
      yield* manager.stop("flood", { deadline: "3 seconds" })
    })))

  it.live("a peer that stops answering pings is terminated; a live one has its round trip measured", () =>
    withManager(Effect.gen(function*() {
      const manager = yield* BotManager
      const ws = Server.make({ heartbeat: "100 millis" })
      yield* manager.start(echoBot(ws.adapter))
      const live = yield* client(ws.url()!)
      const dead = yield* client(ws.url()!)
      // ws answers pings by itself; a peer that hangs does not
      ;(dead.ws as unknown as { pong: () => void }).pong = () => {}
      yield* until(() => ws.stats().open === 1, 2000)
      assert.strictEqual(ws.stats().terminated, 1)
      assert.isNumber(ws.rtt("c1"))
      live.ws.send("ok")
      assert.strictEqual(yield* live.next(), "ok")
      dead.ws.terminate()
      yield* manager.stop("echo", { deadline: "3 seconds" })
    })))

  it.live("an idle connection is closed with 1000 after the idle timeout", () =>
    withManager(Effect.gen(function*() {
      const manager = yield* BotManager
      const ws = Server.make({ idleTimeout: "200 millis", heartbeat: false })
      yield* manager.start(echoBot(ws.adapter))
      const c = yield* client(ws.url()!)
      const closed = yield* closedWithin(c, 2000)
      assert.strictEqual(closed.code, 1000)
      assert.strictEqual(closed.reason, "idle timeout")
      yield* manager.stop("echo", { deadline: "3 seconds" })
    })))

  it.live("broadcast writes to every open connection through its queue", () =>
    withManager(Effect.gen(function*() {
      const manager = yield* BotManager
      const ws = Server.make()
      yield* manager.start(echoBot(ws.adapter))
      const cs = yield* Effect.all(Array.from({ length: 10 }, () => client(ws.url()!)))
      yield* until(() => ws.stats().open === 10)
      const n = yield* ws.broadcast("news", (id) => id !== "c1")
      assert.strictEqual(n, 9)
      for (const c of cs.slice(1)) assert.strictEqual(yield* c.next(), "news")
      yield* sleep(20)
      assert.strictEqual(cs[0]!.received.length, 0)
      yield* manager.stop("echo", { deadline: "3 seconds" })
    })))

  it.live("an idle connection holds no fiber: the shared reader serves frames, nothing stays per connection", () =>
    withManager(Effect.gen(function*() {
      const manager = yield* BotManager
      const ws = Server.make()
      yield* manager.start(echoBot(ws.adapter))
      const fibers = () => manager.registry.snapshot({ bot: "echo" }).total
      const base = fibers() // the sweep and the handshake guard
      const cs = yield* Effect.all(Array.from({ length: 20 }, () => client(ws.url()!)))
      for (const c of cs) c.ws.send("hi")
      for (const c of cs) assert.strictEqual(yield* c.next(), "hi")
      yield* until(() => fibers() === base, 3000)
      assert.strictEqual(ws.stats().open, 20)
      cs[3]!.ws.send("again")
      assert.strictEqual(yield* cs[3]!.next(), "again")
      yield* manager.stop("echo", { deadline: "3 seconds" })
      for (const c of cs) assert.strictEqual((yield* closedWithin(c)).code, 1001)
    })))

  it.live("a peer that never answers the close handshake is terminated at the stop deadline", () =>
    withManager(Effect.gen(function*() {
      const manager = yield* BotManager
      const ws = Server.make({ closeTimeout: "200 millis", heartbeat: false })
      yield* manager.start(echoBot(ws.adapter))
      const polite = yield* client(ws.url()!)
      const deaf = yield* client(ws.url()!)
      deaf.ws.pause() // never reads the close frame, never answers it
      yield* until(() => ws.stats().open === 2)
      const report = yield* manager.stop("echo", { deadline: "3 seconds" })
      assert.isTrue(report.withinDeadline)
      assert.isBelow(report.durationMs, 1500)
      assert.strictEqual((yield* closedWithin(polite)).code, 1001)
      assert.strictEqual(ws.stats().terminated, 1)
      assert.strictEqual(ws.stats().closedClean, 1)
      assert.strictEqual(ws.stats().sockets, 0)
      deaf.ws.terminate()
    })))

  it.live("a message the bot is too busy for is answered with busy and counted, and the connection goes on", () =>
    withManager(Effect.gen(function*() {
      const manager = yield* BotManager
      const gate = yield* Deferred.make<void>()
      const ws = Server.make({ port: 0 })
      yield* manager.start(Bot.make({
        name: "busy",
        adapters: [ws.adapter],
        router: Router.empty.on("message", (ctx) => Effect.andThen(Deferred.await(gate), ctx.reply(`done ${ctx.text}`))),
        options: { concurrency: 1, intake: { capacity: 1, policy: "reject-busy" } }
      }))
      const c = yield* client(ws.url()!)
      const status = () => Effect.map(manager.status(), (all) => all[0]!)
      yield* until(() => ws.stats().open === 1)
      // the open update is handled (no route) before the messages come
      yield* Effect.repeat(status(), { until: (s) => s.outcomes.unhandled === 1 && s.inFlight === 0, schedule: Schedule.spaced("10 millis"), times: 200 })
      c.ws.send("one") // runs (held by the gate)
      yield* Effect.repeat(status(), { until: (s) => s.inFlight === 1 && s.intake.depth === 0, schedule: Schedule.spaced("10 millis"), times: 200 })
      c.ws.send("two") // waits in the intake
      yield* Effect.repeat(status(), { until: (s) => s.intake.depth === 1, schedule: Schedule.spaced("10 millis"), times: 200 })
      c.ws.send("three") // no room: busy
      assert.strictEqual(yield* c.next(), "busy")
      assert.strictEqual(ws.stats().busy, 1)
      yield* Deferred.succeed(gate, undefined)
      assert.deepStrictEqual([yield* c.next(), yield* c.next()], ["done one", "done two"])
      c.ws.close(1000)
      yield* manager.stop("busy", { deadline: "3 seconds" })
    })))

  it.live("while the bot's intake breaker is open, new upgrades get 503; once it closes they are taken again", () =>
    withManager(Effect.gen(function*() {
      const manager = yield* BotManager
      const ws = Server.make({ port: 0 })
      yield* manager.start(echoBot(ws.adapter))
      const url = ws.url()!
      manager.guard("echo")!.breaker.forceOpen("operator: maintenance")
      assert.strictEqual(yield* refusedStatus(url), 503)
      assert.strictEqual(ws.stats().refused, 1)
      manager.guard("echo")!.breaker.reset("maintenance over")
      const c = yield* client(url)
      c.ws.send("back")
      assert.strictEqual(yield* c.next(), "back")
      c.ws.close(1000)
      yield* manager.stop("echo", { deadline: "3 seconds" })
    })))
})

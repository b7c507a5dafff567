import * as net from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Exit, Schedule } from "effect"
import { Bot, BotManager, Router } from "@fiberbot/core"
import { Client } from "@fiberbot/adapters/websocket"
import { WebSocketServer, type WebSocket } from "ws"
import { until, withManager } from "./helpers.ts"

/** A bare ws server on 127.0.0.1 that records frames and lets the test kill connections. */
const peer = () =>
  Effect.acquireRelease(
    Effect.callback<{ wss: WebSocketServer; port: number; sockets: Array<WebSocket>; frames: Array<string> }>((resume) => {
      const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 })
      const sockets: Array<WebSocket> = []
      const frames: Array<string> = []
      wss.on("connection", (ws) => {
        sockets.push(ws)
        ws.on("message", (d) => frames.push(d.toString()))
        ws.send("welcome")
      })
      wss.once("listening", () => resume(Effect.succeed({ wss, port: (wss.address() as net.AddressInfo).port, sockets, frames })))
    }),
    ({ wss }) => Effect.callback<void>((resume) => {
      for (const c of wss.clients) c.terminate()
      wss.close(() => resume(Effect.void))
    })
  )

/**
 * A bare ws server that answers "go" with `count` frames sent in one go, so they reach the client
 * in one socket read; `flushed` completes once the last of them was written.
 */
const burstPeer = (count: number) =>
  Effect.gen(function*() {
    const flushed = yield* Deferred.make<void>()
    const wss = yield* Effect.acquireRelease(
      Effect.callback<WebSocketServer>((resume) => {
        const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 })
        wss.on("connection", (ws) =>
          ws.on("message", (d) => {
            if (d.toString() !== "go") return
            for (let i = 0; i < count - 1; i++) ws.send(`m${i}`)
            ws.send(`m${count - 1}`, () => Deferred.doneUnsafe(flushed, Exit.void))
          }))
        wss.once("listening", () => resume(Effect.succeed(wss)))
      }),
      (wss) => Effect.callback<void>((resume) => {
        for (const c of wss.clients) c.terminate()
        wss.close(() => resume(Effect.void))
      })
    )
    const sent = Array.from({ length: count }, (_, i) => `m${i}`)
    return { url: `ws://127.0.0.1:${(wss.address() as net.AddressInfo).port}`, flushed: Deferred.await(flushed), sent }
  })

/** A bot whose handler records each text and then waits for `gate`: one run at a time, one update queued. */
const slowBot = (adapter: import("@fiberbot/core").Adapter.Adapter, heard: Array<string>, gate: Deferred.Deferred<void>) =>
  Bot.make({
    name: "out",
    adapters: [adapter],
    router: Router.empty.on("message", (ctx) => Effect.andThen(Effect.sync(() => heard.push(ctx.text ?? "")), Deferred.await(gate))),
    options: { concurrency: 1, intake: { capacity: 1 }, handlerTimeout: "10 seconds" }
  })

describe("WebSocket client", () => {
  it.effect("the reconnect backoff grows exponentially with jitter and is capped", () =>
    Effect.gen(function*() {
      const delays: Array<number> = []
      const schedule = Client.backoff({ base: 100, factor: 2, max: 1000 })
      const stepper = yield* Schedule.toStep(schedule)
      for (let i = 0; i < 8; i++) {
        const [, d] = yield* stepper(0, undefined)
        delays.push(Duration.toMillis(d))
      }
      assert.isAtLeast(delays[0]!, 80)
      assert.isAtMost(delays[0]!, 120)
      assert.isAbove(delays[3]!, delays[0]! * 4)
      assert.isTrue(delays.every((d) => d <= 1000), delays.join(","))
      assert.strictEqual(delays[7], 1000)
    }))

  it.live("reconnects after the service drops it; messages queued while down are delivered after (keep)", () =>
    withManager(Effect.scoped(Effect.gen(function*() {
      const manager = yield* BotManager
      const service = yield* peer()
      const client = Client.make({
        url: `ws://127.0.0.1:${service.port}`,
        reconnect: { base: "50 millis", max: "200 millis" },
        heartbeat: false
      })
      const heard: Array<string> = []
      yield* manager.start(Bot.make({
        name: "out",
        adapters: [client.adapter],
        router: Router.empty.on("message", (ctx) => Effect.andThen(Effect.sync(() => heard.push(ctx.text ?? "")), ctx.reply(`got ${ctx.text}`)))
      }))
      yield* until(() => service.frames.includes("got welcome"))
      service.sockets[0]!.terminate()
      yield* until(() => client.state() !== "open")
      yield* client.send("while down")
      yield* until(() => client.stats().connects === 2, 3000)
      yield* until(() => service.frames.includes("while down") && service.frames.filter((f) => f === "got welcome").length === 2)
      assert.deepStrictEqual(heard, ["welcome", "welcome"])
      const report = yield* manager.stop("out", { deadline: "3 seconds" })
      assert.isTrue(report.withinDeadline)
      assert.strictEqual(client.state(), "stopped")
    }))))

  it.live("a burst far beyond the inbound capacity in one read reaches a slow bot whole and in order", () =>
    withManager(Effect.scoped(Effect.gen(function*() {
      const manager = yield* BotManager
      const service = yield* burstPeer(500)
      const heard: Array<string> = []
      const gate = yield* Deferred.make<void>()
      const client = Client.make({ url: service.url, heartbeat: false })
      yield* manager.start(slowBot(client.adapter, heard, gate))
      yield* until(() => client.state() === "open")
      yield* client.send("go")
      yield* service.flushed.pipe(Effect.timeout(Duration.seconds(2)), Effect.orDie)
      // the first frame is held by the handler: the rest of the read (the whole burst) waits in
      // the client, far past its 64 inbound frames
      yield* until(() => heard.length === 1)
      yield* Deferred.succeed(gate, undefined)
      // before: the frames past the full inbound queue were dropped unseen (65 of 500 arrived)
      yield* until(() => heard.length >= service.sent.length, 3000).pipe(
        Effect.catchDefect(() => Effect.die(new Error(`the bot got ${heard.length} of ${service.sent.length} frames`)))
      )
      assert.deepStrictEqual(heard, service.sent)
      const report = yield* manager.stop("out", { deadline: "3 seconds" })
      assert.isTrue(report.withinDeadline)
    }))))

  it.live("a close while reading is paused (bot behind) still reads the service's close reply: a clean close, not a terminate at closeTimeout", () =>
    withManager(Effect.scoped(Effect.gen(function*() {
      const manager = yield* BotManager
      const service = yield* burstPeer(300)
      const heard: Array<string> = []
      const gate = yield* Deferred.make<void>() // never opened: the bot stays behind
      // the idle timeout closes the connection while the read fiber still waits for the bot: no
      // stop, whose intake close would let the reader catch up (and resume) first
      const client = Client.make({ url: service.url, heartbeat: false, idleTimeout: "300 millis", closeTimeout: "2 seconds", reconnect: { base: "1 second" } })
      yield* manager.start(slowBot(client.adapter, heard, gate))
      yield* until(() => client.state() === "open")
      yield* client.send("go")
      yield* service.flushed.pipe(Effect.timeout(Duration.seconds(2)), Effect.orDie)
      // the handler got the first frame of the read that brought the burst: past 64 waiting,
      // reading is paused
      yield* until(() => heard.length === 1)
      // before: 1000 went out but the reply was never read: a terminate after the 2 s closeTimeout
      yield* until(() => client.stats().closedClean + client.stats().terminated > 0, 1500)
      assert.deepStrictEqual([client.stats().closedClean, client.stats().terminated], [1, 0])
      const report = yield* manager.stop("out", { deadline: "3 seconds", drain: "50 millis" })
      assert.isTrue(report.withinDeadline, report.unfinished.join(", "))
      // the stop report carries the client's figures too
      const figures = report.adapters?.["ws-client"] as { readonly terminated: number } | undefined
      assert.strictEqual(figures?.terminated, 0)
    }))))

  it.live("a service that never answers the handshake counts as a failed attempt, retried with backoff", () =>
    withManager(Effect.scoped(Effect.gen(function*() {
      const manager = yield* BotManager
      const held: Array<net.Socket> = []
      const silent = yield* Effect.acquireRelease(
        Effect.callback<net.Server>((resume) => {
          const s = net.createServer((socket) => {
            held.push(socket)
          })
          s.listen(0, "127.0.0.1", () => resume(Effect.succeed(s)))
        }),
        (s) => Effect.callback<void>((resume) => {
          for (const h of held) h.destroy()
          s.close(() => resume(Effect.void))
        })
      )
      const client = Client.make({
        url: `ws://127.0.0.1:${(silent.address() as net.AddressInfo).port}`,
        handshakeTimeout: "100 millis",
        reconnect: { base: "20 millis", max: "50 millis" }
      })
      yield* manager.start(Bot.make({ name: "out", adapters: [client.adapter] }))
      yield* until(() => client.stats().failures >= 3, 3000)
      assert.strictEqual(client.stats().connects, 0)
      yield* manager.stop("out", { deadline: "3 seconds" })
    }))))
})

import * as net from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Schedule } from "effect"
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

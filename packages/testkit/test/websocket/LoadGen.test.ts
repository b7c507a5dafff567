import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { WebSocketServer } from "ws"
import { LoadGen } from "@fiberbot/testkit/websocket"

/** A bare ws echo server for the generator to talk to. */
const echoServer = Effect.acquireRelease(
  Effect.callback<{ url: string; wss: WebSocketServer; server: http.Server }>((resume) => {
    const server = http.createServer()
    const wss = new WebSocketServer({ server })
    wss.on("connection", (ws) => {
      ws.on("message", (d) => ws.send(d))
      ws.on("error", () => {})
    })
    server.listen(0, "127.0.0.1", () => resume(Effect.succeed({ url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}`, wss, server })))
  }),
  ({ wss, server }) => Effect.callback<void>((resume) => {
    for (const c of wss.clients) c.terminate()
    server.closeAllConnections()
    server.close(() => resume(Effect.void))
  })
)

describe("LoadGen", () => {
  it.live("echo mode reports throughput and latency percentiles, and stops by itself", () =>
    Effect.scoped(Effect.gen(function*() {
      const { url } = yield* echoServer
      const load = yield* LoadGen.spawn({ url, mode: "echo", connections: 10, seconds: 1 })
      const r = yield* load.result
      assert.strictEqual(r["opened"], 10)
      assert.isAbove(Number(r["echoed"]), 100)
      assert.isAtLeast(Number(r["p99Ms"]), Number(r["p50Ms"]))
      yield* Effect.sleep("100 millis")
      assert.isNotNull(load.child.exitCode)
    })))

  it.live("idle mode holds its connections until asked to stop", () =>
    Effect.scoped(Effect.gen(function*() {
      const { url, wss } = yield* echoServer
      const load = yield* LoadGen.spawn({ url, mode: "idle", connections: 20, seconds: 30 })
      const ready = yield* load.ready
      assert.strictEqual(ready["opened"], 20)
      assert.strictEqual(wss.clients.size, 20)
      yield* load.stop
      yield* load.result
    })))

  it.live("refuses anything but a loopback URL", () =>
    Effect.scoped(Effect.gen(function*() {
      const load = yield* LoadGen.spawn({ url: "ws://example.com/", mode: "echo", connections: 1, seconds: 1 })
      const error = yield* Effect.flip(load.result)
      assert.include(error.reason, "loopback only")
    })))
})

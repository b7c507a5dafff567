/**
 * Test helpers for the WebSocket adapter: a `ws` client as Effects, and a bot around a server.
 */
import * as net from "node:net"
import { Duration, Effect } from "effect"
import { Bot, BotManager, Router } from "@fiberbot/core"
import { LeakCheck } from "@fiberbot/core/testing"
import { WebSocket } from "ws"

export const withManager = <A, E>(effect: Effect.Effect<A, E, BotManager>) =>
  LeakCheck.verify(effect).pipe(Effect.provide(BotManager.layer))

export interface Closed {
  readonly code: number
  readonly reason: string
}

/** A test client: every frame it got, and how it closed. */
export interface TestClient {
  readonly ws: WebSocket
  readonly received: Array<string | Buffer>
  readonly closed: Promise<Closed>
  /** The next frame not taken yet (or the `index`-th, from 1). */
  readonly next: (index?: number) => Effect.Effect<string | Buffer>
}

export const client = (url: string, options: { readonly headers?: Record<string, string> } = {}) =>
  Effect.promise(() =>
    new Promise<TestClient>((resolve, reject) => {
      const ws = new WebSocket(url, options)
      const received: Array<string | Buffer> = []
      const waiters: Array<() => void> = []
      let taken = 0
      ws.on("message", (data: Buffer, binary) => {
        received.push(binary ? data : data.toString())
        for (const w of waiters.splice(0)) w()
      })
      const closed = new Promise<Closed>((res) => ws.once("close", (code, reason) => res({ code, reason: reason.toString() })))
      ws.once("open", () =>
        resolve({
          ws,
          received,
          closed,
          next: (index?: number) =>
            Effect.callback<string | Buffer>((resume) => {
              const n = index ?? ++taken
              const check = () => {
                if (received.length >= n) resume(Effect.succeed(received[n - 1]!))
                else waiters.push(check)
              }
              check()
              return Effect.sync(() => {
                const i = waiters.indexOf(check)
                if (i >= 0) waiters.splice(i, 1)
              })
            }).pipe(Effect.timeout(Duration.seconds(5)), Effect.orDie)
        }))
      ws.once("error", reject)
    })
  )

/** Connects and expects the upgrade to be refused: answers the HTTP status. */
export const refusedStatus = (url: string) =>
  Effect.promise(() =>
    new Promise<number>((resolve) => {
      const ws = new WebSocket(url)
      ws.once("unexpected-response", (_req, res) => {
        resolve(res.statusCode ?? 0)
        ws.terminate()
      })
      ws.once("error", () => resolve(-1))
      ws.once("open", () => {
        resolve(101)
        ws.terminate()
      })
    })
  )

export const closedWithin = (c: TestClient, ms = 5000) =>
  Effect.callback<Closed>((resume) => {
    void c.closed.then((closed) => resume(Effect.succeed(closed)))
  }).pipe(Effect.timeout(Duration.millis(ms)), Effect.orDie)

/** A raw TCP socket that sends half an upgrade request and waits: answers ms until the server hung up. */
export const slowloris = (port: number) =>
  Effect.promise(() =>
    new Promise<number>((resolve) => {
      const started = performance.now()
      const s = net.connect(port, "127.0.0.1", () => s.write("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"))
      s.on("error", () => {})
      s.once("close", () => resolve(performance.now() - started))
    })
  )

/** The request line and headers of a WebSocket upgrade for `path`, as a raw client sends them. */
export const upgradeRequest = (path: string) =>
  `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
  "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"

/**
 * A raw TCP socket that sends an upgrade request for `path` and waits for the server to close it:
 * answers what the server wrote. Dies when the server has not closed it within `ms`.
 */
export const rawUpgrade = (port: number, path: string, ms = 2000) =>
  Effect.callback<string>((resume) => {
    const chunks: Array<Buffer> = []
    const s = net.connect(port, "127.0.0.1", () => s.write(upgradeRequest(path)))
    s.on("data", (d: Buffer) => chunks.push(d))
    s.on("error", () => {})
    s.once("close", () => resume(Effect.succeed(Buffer.concat(chunks).toString())))
    return Effect.sync(() => s.destroy())
  }).pipe(
    Effect.timeoutOrElse({ duration: Duration.millis(ms), orElse: () => Effect.die(new Error(`the server did not close the socket within ${ms} ms`)) })
  )

export const sleep = (ms: number) => Effect.sleep(Duration.millis(ms))

/** Waits (real time) until `predicate` holds, at most `ms`. */
export const until = (predicate: () => boolean, ms = 3000) =>
  Effect.gen(function*() {
    const started = performance.now()
    while (!predicate()) {
      if (performance.now() - started > ms) return yield* Effect.die(new Error(`condition not met within ${ms} ms`))
      yield* sleep(5)
    }
  })

export const echoBot = (adapter: import("@fiberbot/core").Adapter.Adapter, name = "echo") =>
  Bot.make({
    name,
    adapters: [adapter],
    router: Router.empty.on("message", (ctx) => ctx.reply(ctx.text ?? "")),
    options: { handlerTimeout: "5 seconds" }
  })

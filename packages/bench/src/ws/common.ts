/**
 * Shared pieces of the WebSocket benchmarks: arguments, the fiberbot echo bot, an idiomatic bare
 * `ws` echo server as the peer, and small statistics.
 */
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { Effect } from "effect"
import { Bot, Router } from "@fiberbot/core"
import { Server } from "@fiberbot/adapters/websocket"
import { WebSocketServer } from "ws"
export { arg, median, round } from "../args.ts"




/**
 * The fiberbot echo bot: every text message is sent back to its connection. The handler is written
 * the way our examples and the `fiberbot new` template write one (a reply to a peer already gone
 * fails the run and the bot's error boundary reports it), as the bare server is idiomatic `ws`.
 */
export const echoBot = (ws: Server.WebSocketServerAdapter) =>
  Bot.make({
    name: "ws-echo",
    adapters: [ws.adapter],
    router: Router.empty.on("message", (ctx) => ctx.reply(ctx.text ?? "")),
    options: { concurrency: 2000, intake: { capacity: 10_000 }, metrics: false }
  })

/** An idiomatic bare `ws` echo server on 127.0.0.1, port from the OS. */
export const bareEcho = Effect.acquireRelease(
  Effect.callback<{ url: string; wss: WebSocketServer; server: http.Server }>((resume) => {
    const server = http.createServer()
    const wss = new WebSocketServer({ server, perMessageDeflate: false })
    wss.on("connection", (ws) => {
      ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }))
      ws.on("error", () => {})
    })
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      resume(Effect.succeed({ url: `ws://127.0.0.1:${port}/`, wss, server }))
    })
  }),
  ({ wss, server }) =>
    Effect.callback<void>((resume) => {
      for (const c of wss.clients) c.terminate()
      wss.close()
      server.closeAllConnections()
      server.close(() => resume(Effect.void))
    })
)

/** Heap used after forced GCs (run with --expose-gc). */
export const heapAfterGc = () => {
  for (let i = 0; i < 3; i++) globalThis.gc?.()
  return process.memoryUsage().heapUsed
}

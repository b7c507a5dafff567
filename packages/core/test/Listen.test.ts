import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { createServer, type Server } from "node:net"
import { Listen } from "@fiberbot/core"

const closing = (server: Server) => Effect.callback<void>((resume) => void server.close(() => resume(Effect.void)))

describe("Listen", () => {
  it.live("a port in use is a typed error, not an 'error' event; later errors go to the caller", () =>
    Effect.gen(function*() {
      const later: Array<string> = []
      const first = createServer()
      const address = yield* Listen.listen(first, { port: 0, host: "127.0.0.1" }, (e) => later.push(e.message))
      assert.isAbove(address.port, 0)
      const second = createServer()
      const error = yield* Effect.flip(Listen.listen(second, { port: address.port, host: "127.0.0.1" }, () => {}))
      assert.strictEqual(error.code, "EADDRINUSE")
      assert.include(error.message, `127.0.0.1:${address.port}`)
      // an accept failure after start: without a listener node would throw it
      first.emit("error", Object.assign(new Error("accept EMFILE"), { code: "EMFILE" }))
      assert.deepStrictEqual(later, ["accept EMFILE"])
      assert.isTrue(first.listening)
      yield* closing(first)
    }))
})

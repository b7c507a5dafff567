/**
 * Router: which handler runs for an update.
 *
 * Routes are tried in the order they were added; the first that matches runs. Filters: update
 * kind, text (exact string or RegExp), command (`/name`), callback data, or any predicate.
 * `use` adds middleware that wraps the handler effect of every route of this router and of the
 * routers mounted under it; `route` mounts a sub-router. Routers are immutable values: each call
 * returns a new router, so a router can be shared between bots.
 *
 * ```ts import.meta.vitest
 * import { Effect } from "effect"
 * import { expect } from "vitest"
 * import * as Router from "./Router.ts"
 * const router = Router.empty
 *   .command("start", (ctx) => ctx.reply("welcome"))
 *   .text(/^ping$/i, (ctx) => ctx.reply("pong"))
 * const update = { adapter: "test", kind: "message", id: "1", key: "c1", text: "/start", payload: {} }
 * expect(router.resolve(update)?.name).toBe("command/start")
 * ```
 */
import { Duration, Effect, Scope } from "effect"
import type { Handler, HandlerContext } from "./Handler.ts"
import * as Update from "./Update.ts"

/** Wraps the handler run: call `next` to run the rest of the chain, or don't, to stop it. */
export type Middleware = <P>(ctx: HandlerContext<P>, next: Effect.Effect<void, unknown, Scope.Scope>) => Effect.Effect<void, unknown, Scope.Scope>

export interface RouteOptions {
  /** The task name of this route's runs, after `handler/`. */
  readonly name?: string | undefined
  /** Overrides the bot's handler timeout for this route. */
  readonly timeout?: import("effect").Duration.Input | undefined
}

/** What a filter found: `undefined` when the route does not apply, otherwise the match (if any). */
type Matcher = (update: Update.Update) => { readonly match: RegExpExecArray | undefined } | undefined

export interface Route {
  readonly name: string
  readonly timeout: import("effect").Duration.Input | undefined
  readonly matcher: Matcher
  readonly handler: Handler<any, unknown>
}

/** A route found for an update, with the middleware chain already applied. */
export interface Resolved {
  readonly name: string
  /** The task name of the route's runs: `handler/<name>`. */
  readonly task: string
  readonly timeout: import("effect").Duration.Input | undefined
  /** `timeout` in milliseconds, when the route sets one. */
  readonly timeoutMs: number | undefined
  readonly match: RegExpExecArray | undefined
  readonly handler: Handler<any, unknown>
}

type Entry =
  | { readonly _tag: "Route"; readonly route: Route }
  | { readonly _tag: "Use"; readonly middleware: Middleware }
  | { readonly _tag: "Mount"; readonly router: Router }

const HIT = { match: undefined }

export class Router {
  readonly #entries: ReadonlyArray<Entry>
  #compiled: ReadonlyArray<{ readonly route: Route; readonly middleware: ReadonlyArray<Middleware> }> | undefined
  /** Per route, what `resolve` answers when the route matches without a RegExp match: made once. */
  #resolved: ReadonlyArray<Resolved> | undefined

  constructor(entries: ReadonlyArray<Entry> = []) {
    this.#entries = entries
  }

  #add(entry: Entry): Router {
    return new Router([...this.#entries, entry])
  }

  /** Any update whose kind is `kind` (`"message"`, `"open"`, ...). */
  on<P = unknown>(kind: string, handler: Handler<P>, options?: RouteOptions): Router {
    return this.filter((u) => u.kind === kind, handler, { name: kind, ...options })
  }

  /** A message whose text equals `pattern`, or matches it when it is a RegExp. */
  text<P = unknown>(pattern: string | RegExp, handler: Handler<P>, options?: RouteOptions): Router {
    const matcher: Matcher = typeof pattern === "string"
      ? (u) => (u.text === pattern ? HIT : undefined)
      : (u) => {
        if (u.text === undefined) return undefined
        pattern.lastIndex = 0
        const m = pattern.exec(u.text)
        return m === null ? undefined : { match: m }
      }
    return this.#add({ _tag: "Route", route: route(options?.name ?? "text", options, matcher, handler) })
  }

  /** A message carrying the command `/name` (any `@botname` suffix; case-insensitive). */
  command<P = unknown>(name: string | ReadonlyArray<string>, handler: Handler<P>, options?: RouteOptions): Router {
    const names = new Set((typeof name === "string" ? [name] : name).map((n) => n.replace(/^\//, "").toLowerCase()))
    const matcher: Matcher = (u) => {
      const command = Update.parseCommand(u.text)
      return command !== undefined && names.has(command.name) ? HIT : undefined
    }
    return this.#add({ _tag: "Route", route: route(options?.name ?? `command/${[...names].join("|")}`, options, matcher, handler) })
  }

  /** A callback (button press) whose data equals `data`, or matches it when it is a RegExp. */
  callback<P = unknown>(data: string | RegExp | undefined, handler: Handler<P>, options?: RouteOptions): Router {
    const matcher: Matcher = (u) => {
      if (u.callbackData === undefined) return undefined
      if (data === undefined) return HIT
      if (typeof data === "string") return u.callbackData === data ? HIT : undefined
      data.lastIndex = 0
      const m = data.exec(u.callbackData)
      return m === null ? undefined : { match: m }
    }
    return this.#add({ _tag: "Route", route: route(options?.name ?? "callback", options, matcher, handler) })
  }

  /** Any update for which `predicate` holds. */
  filter<P = unknown>(predicate: (update: Update.Update<P>) => boolean, handler: Handler<P>, options?: RouteOptions): Router {
    const matcher: Matcher = (u) => (predicate(u as Update.Update<P>) ? HIT : undefined)
    return this.#add({ _tag: "Route", route: route(options?.name ?? "filter", options, matcher, handler) })
  }

  /** Wraps every route of this router (and its mounted routers) with `middleware`. */
  use(middleware: Middleware): Router {
    return this.#add({ _tag: "Use", middleware })
  }

  /** Mounts `router`: its routes are tried at this point, inside this router's middleware. */
  route(router: Router): Router {
    return this.#add({ _tag: "Mount", router })
  }

  /** Every route in the order it is tried, each with the middleware that wraps it. */
  routes(): ReadonlyArray<{ readonly route: Route; readonly middleware: ReadonlyArray<Middleware> }> {
    if (this.#compiled === undefined) {
      const middleware = this.#entries.flatMap((e) => (e._tag === "Use" ? [e.middleware] : []))
      this.#compiled = this.#entries.flatMap((e) => {
        switch (e._tag) {
          case "Route":
            return [{ route: e.route, middleware }]
          case "Mount":
            return e.router.routes().map((r) => ({ route: r.route, middleware: [...middleware, ...r.middleware] }))
          case "Use":
            return []
        }
      })
    }
    return this.#compiled
  }

  /** The first route that matches `update`, with its middleware applied, or `undefined`. */
  resolve(update: Update.Update): Resolved | undefined {
    const resolved = this.#resolved ??= this.routes().map(({ route, middleware }) => ({
      name: route.name,
      task: `handler/${route.name}`,
      timeout: route.timeout,
      timeoutMs: route.timeout === undefined ? undefined : Duration.toMillis(Duration.fromInputUnsafe(route.timeout)),
      match: undefined,
      handler: middleware.length === 0 ? route.handler : wrap(route.handler, middleware)
    }))
    for (let i = 0; i < resolved.length; i++) {
      const found = resolved[i]!
      const hit = this.#compiled![i]!.route.matcher(update)
      if (hit === undefined) continue
      return hit.match === undefined ? found : { ...found, match: hit.match }
    }
    return undefined
  }
}

const route = (name: string, options: RouteOptions | undefined, matcher: Matcher, handler: Handler<any>): Route => ({
  name,
  timeout: options?.timeout,
  matcher,
  handler
})

const wrap = (handler: Handler<any, unknown>, middleware: ReadonlyArray<Middleware>): Handler<any, unknown> => (ctx) => {
  let next: Effect.Effect<void, unknown, Scope.Scope> = Effect.suspend(() => handler(ctx))
  for (let i = middleware.length - 1; i >= 0; i--) next = middleware[i]!(ctx, next)
  return next
}

/** The router with no routes. */
export const empty: Router = new Router()

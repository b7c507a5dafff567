/**
 * @fiberbot/core: a bot runtime on Effect 4 where nothing runs without an owner.
 */
export * as Adapter from "./Adapter.ts"
export * as Bot from "./Bot.ts"
export { BotManager } from "./BotManager.ts"
export * as BotManagerModule from "./BotManager.ts"
export * as Dispatcher from "./Dispatcher.ts"
export * as FiberRegistry from "./FiberRegistry.ts"
export * as Handler from "./Handler.ts"
export * as Intake from "./Intake.ts"
export * as Logging from "./Logging.ts"
export * as Main from "./Main.ts"
export * as Router from "./Router.ts"
export * as Supervisor from "./Supervisor.ts"
export * as Task from "./Task.ts"
export * as Update from "./Update.ts"
export type { StopReport, BotStatus, StopOptions } from "./BotManager.ts"

/**
 * @fiberbot/core/testing: the leak assertion and an adapter without a network.
 */
export * as LeakCheck from "./LeakCheck.ts"
export * as TestAdapter from "./TestAdapter.ts"

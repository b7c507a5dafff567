// Not built yet: see packages/testkit/README.md.
export {}

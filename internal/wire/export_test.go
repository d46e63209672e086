package wire

// AllBodies is allBodies for the external tests (the fuzz target).
var AllBodies = allBodies

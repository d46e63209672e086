package server

import "github.com/ocm-overlay/ocm/internal/tree"

// LikelyPick is the candidate the server promises a requester's slot
// under (see likelyPick), for tools that replay the server's decision in
// process (bench/scale's simulator).
func LikelyPick(cs []tree.Candidate) (string, bool) { return likelyPick(cs) }

// PromiseHold is how long that slot stays promised.
const PromiseHold = promiseHold

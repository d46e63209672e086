package cli

import (
	"runtime/debug"
	"strings"
)

// Version says which build this is: the module's version (v1.2.3, or
// "(devel)" for a build from a checkout) and the VCS revision with its
// time, "+dirty" when the tree had uncommitted changes. It is what
// --version prints and what the ready lines carry.
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, at, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev == "" {
		return v
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if !strings.Contains(v, rev) { // a pseudo-version already names it
		v += " " + rev + dirty
	}
	if at != "" {
		v += " " + at
	}
	return v
}

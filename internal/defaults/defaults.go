// Package defaults fills a configuration's unset fields with their
// defaults, the one rule every tool's settings follow: a zero or negative
// number, or an empty string, means "use the default".
package defaults

import "cmp"

// Set puts d into *v when *v is unset: zero, negative or empty.
func Set[T cmp.Ordered](v *T, d T) {
	var zero T
	if *v <= zero {
		*v = d
	}
}

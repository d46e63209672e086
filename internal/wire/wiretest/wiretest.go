// Package wiretest holds the check every link's fuzz target runs on its
// Link, so each message set is fuzzed the same way.
package wiretest

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/ocm-overlay/ocm/internal/wire"
)

// maxErrLen bounds an error's text: it may quote a little of the line,
// never echo all of it into a log.
const maxErrLen = 512

// CheckLine decodes line on l and fails t unless: every error is one of
// wire's sentinels, without a body and of bounded length; whatever
// decodes re-encodes to a line without line breaks that decodes to the
// same message (same encoding, same body type).
func CheckLine(t testing.TB, l *wire.Link, line []byte) {
	t.Helper()
	m, err := l.Decode(line)
	if err != nil {
		if len(err.Error()) > maxErrLen {
			t.Fatalf("error of %d bytes echoes the line: %.100s...", len(err.Error()), err)
		}
		for _, s := range []error{wire.ErrMalformed, wire.ErrVersion, wire.ErrUnknownType, wire.ErrInvalid} {
			if errors.Is(err, s) {
				if m.Body != nil {
					t.Fatalf("error %v with a body", err)
				}
				return
			}
		}
		t.Fatalf("error %v is none of the sentinels", err)
	}
	if m.Body == nil || m.V != l.Version || m.Type != m.Body.Type() {
		t.Fatalf("inconsistent message %#v", m)
	}
	out, err := l.Encode(m)
	if err != nil {
		t.Fatalf("decoded message does not encode: %v (%#v)", err, m.Body)
	}
	if bytes.ContainsAny(out, "\n\r") {
		t.Fatalf("encoded line has a line break: %q", out)
	}
	m2, err := l.Decode(out)
	if err != nil {
		t.Fatalf("re-decode %s: %v", out, err)
	}
	// Compare encodings: nil and empty slices both encode as absent.
	out2, err := l.Encode(m2)
	if err != nil || !bytes.Equal(out, out2) || m.ID != m2.ID || m.Re != m2.Re {
		t.Fatalf("round trip differs:\n%s\n%s (%v)", out, out2, err)
	}
	if reflect.TypeOf(m.Body) != reflect.TypeOf(m2.Body) {
		t.Fatalf("body type changed: %T -> %T", m.Body, m2.Body)
	}
}

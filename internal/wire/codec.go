package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
)

// envelope is the part of every message read before the body's type is
// known.
type envelope struct {
	V    *int   `json:"v"`
	Type string `json:"type"`
	ID   uint64 `json:"id"`
	Re   uint64 `json:"re"`
}

// Decode parses one line of the Server link; see Link.Decode.
func Decode(line []byte) (Msg, error) { return Server.Decode(line) }

// Encode returns the line of m on the Server link; see Link.Encode.
func Encode(m Msg) ([]byte, error) { return Server.Encode(m) }

// Decode parses one line (without its "\n") into a message of the link
// and validates it. On ErrVersion, ErrUnknownType and ErrInvalid the
// returned Msg still holds the envelope (Type, ID), so the receiver can
// answer with re set.
func (l *Link) Decode(line []byte) (Msg, error) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		return Msg{}, fmt.Errorf("%w: not a JSON object", ErrMalformed)
	}
	env, v, fast := scanEnvelope(line)
	if fast {
		env.V = &v
	} else if err := json.Unmarshal(line, &env); err != nil {
		return Msg{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	m := Msg{Type: env.Type, ID: env.ID, Re: env.Re}
	if env.V == nil {
		return m, fmt.Errorf("%w: no \"v\" field (want %d)", ErrVersion, l.Version)
	}
	m.V = *env.V
	if m.V != l.Version {
		return m, fmt.Errorf("%w: v=%d (want %d)", ErrVersion, m.V, l.Version)
	}
	if env.Type == "" {
		return m, fmt.Errorf("%w: no \"type\" field", ErrMalformed)
	}
	body := l.New(env.Type)
	if body == nil {
		return m, fmt.Errorf("%w: %.64q (not a %s message)", ErrUnknownType, env.Type, l.Name)
	}
	// The envelope fields are in the same object; body types have no
	// fields of those names, so they are simply ignored here. A body
	// without fields (a heartbeat, most of a server's input) has nothing
	// to read: the line is valid JSON, the envelope's decoding said so.
	if !noFields(body) {
		if err := json.Unmarshal(line, body); err != nil {
			return m, fmt.Errorf("%w: %s: %v", ErrMalformed, env.Type, err)
		}
	}
	if err := body.Validate(); err != nil {
		return m, fmt.Errorf("%s: %w", env.Type, err)
	}
	m.Body = body
	return m, nil
}

// Encode returns the line for m, without its "\n". It validates the body
// (a program bug otherwise would only show on the peer). V is written as
// the link's Version when 0; Type is taken from the body.
func (l *Link) Encode(m Msg) ([]byte, error) {
	if m.Body == nil {
		return nil, fmt.Errorf("%w: no body", ErrInvalid)
	}
	if m.V != 0 && m.V != l.Version {
		return nil, fmt.Errorf("%w: v=%d", ErrVersion, m.V)
	}
	if m.Type != "" && m.Type != m.Body.Type() {
		return nil, fmt.Errorf("%w: type %q does not match body %q", ErrInvalid, m.Type, m.Body.Type())
	}
	if err := m.Body.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", m.Body.Type(), err)
	}
	body := []byte("{}")
	if !noFields(m.Body) {
		var err error
		if body, err = marshal(m.Body); err != nil {
			return nil, fmt.Errorf("%s: %w", m.Body.Type(), err)
		}
	}
	b := make([]byte, 0, len(body)+64)
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, int64(l.Version), 10)
	b = append(b, `,"type":`...)
	b = strconv.AppendQuote(b, m.Body.Type()) // types are plain ASCII
	if m.ID != 0 {
		b = append(b, `,"id":`...)
		b = strconv.AppendUint(b, m.ID, 10)
	}
	if m.Re != 0 {
		b = append(b, `,"re":`...)
		b = strconv.AppendUint(b, m.Re, 10)
	}
	// body is "{...}": splice its fields after the envelope's.
	if inner := body[1 : len(body)-1]; len(inner) > 0 {
		b = append(b, ',')
		b = append(b, inner...)
	}
	b = append(b, '}')
	return b, nil
}

// marshal encodes a body without HTML escaping and without the trailing
// newline json.Encoder adds.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// noFields reports whether body is a pointer to a struct without fields.
func noFields(body Body) bool {
	t := reflect.TypeOf(body)
	return t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct && t.Elem().NumField() == 0
}

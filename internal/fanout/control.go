package fanout

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Handle executes one control line and returns its answer; a malformed
// line gets an error reply and changes nothing.
func (f *Fanout) Handle(line []byte) Reply {
	var req Request
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return Reply{Error: fmt.Sprintf("malformed request: %v", err)}
	}
	if dec.More() {
		return Reply{Error: "malformed request: one JSON object per line"}
	}
	r := Reply{Op: req.Op, ID: req.ID}
	var err error
	switch req.Op {
	case "add", "remove":
		if req.To == "" {
			err = errors.New(`missing "to"`)
			break
		}
		var name string
		if req.Op == "add" {
			name, err = f.Add(req.To)
		} else {
			name, err = f.Remove(req.To)
		}
		if err == nil {
			r.To = name
		}
	case "list":
		r.To = f.List()
	case "stats":
		s := f.Stats()
		r.Stats = &s
	case "":
		err = errors.New(`missing "op" (add, remove, list, stats)`)
	default:
		err = fmt.Errorf("unknown op %q (add, remove, list, stats)", req.Op)
	}
	if err != nil {
		r.Error = err.Error()
		return r
	}
	r.OK = true
	return r
}

package wire

import "strconv"

// scanEnvelope reads a line that is exactly an envelope as Encode writes
// it for a body without fields: {"v":N,"type":"NAME"} with optional
// ,"id":N and ,"re":N after it, in that order, no spaces, NAME in
// [a-z_]. Such lines are most of a server's input (heartbeats, every
// relay every few seconds) and of its output; reading them without
// encoding/json saves its reflection and the stack it grows. Any other
// line (other keys, another order, spaces, escapes, a number that is not
// a plain decimal) reports ok false, and json decides, so the answer is
// always the one json.Unmarshal would give.
func scanEnvelope(line []byte) (env envelope, v int, ok bool) {
	s := string(line) // no copy: the compiler sees it does not escape
	num := func(key string) (uint64, bool) {
		if len(s) < len(key) || s[:len(key)] != key {
			return 0, false
		}
		s = s[len(key):]
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 || i > 1 && s[0] == '0' { // JSON has no leading zeros
			return 0, false
		}
		n, err := strconv.ParseUint(s[:i], 10, 64)
		if err != nil {
			return 0, false
		}
		s = s[i:]
		return n, true
	}
	n, ok := num(`{"v":`)
	if !ok || n > 1<<31-1 {
		return envelope{}, 0, false
	}
	v = int(n)
	const typeKey = `,"type":"`
	if len(s) < len(typeKey) || s[:len(typeKey)] != typeKey {
		return envelope{}, 0, false
	}
	s = s[len(typeKey):]
	i := 0
	for i < len(s) && (s[i] >= 'a' && s[i] <= 'z' || s[i] == '_') {
		i++
	}
	if i == 0 || i >= len(s) || s[i] != '"' {
		return envelope{}, 0, false
	}
	env.Type, s = s[:i], s[i+1:]
	if len(s) > 0 && s[0] == ',' && len(s) > 2 && s[2] == 'i' {
		if env.ID, ok = num(`,"id":`); !ok {
			return envelope{}, 0, false
		}
	}
	if len(s) > 0 && s[0] == ',' {
		if env.Re, ok = num(`,"re":`); !ok {
			return envelope{}, 0, false
		}
	}
	if s != "}" {
		return envelope{}, 0, false
	}
	env.Type = string([]byte(env.Type)) // own copy: line's buffer is reused
	return env, v, true
}

package wire

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// TestConnLinesAcrossBufferSizes reads lines shorter than, equal to and
// longer than the small read buffer, arriving in chunks of every size
// around it, over TCP: each comes out whole, the limit still holds, and
// the lines after a long one are unharmed.
func TestConnLinesAcrossBufferSizes(t *testing.T) {
	const limit = 3000
	var lines []string
	for _, n := range []int{60, smallBuf - 2, smallBuf - 1, smallBuf, smallBuf + 1, 2*smallBuf + 3, 60, limit, 61} {
		lines = append(lines, lineOfLen(n))
	}
	input := strings.Join(lines[:3], "\n") + "\r\n" + strings.Join(lines[3:], "\n") + "\n" +
		strings.Repeat("z", limit+5) + "\n" + lineOfLen(70) + "\n"
	for _, chunk := range []int{1, 7, smallBuf - 1, smallBuf, smallBuf + 1, len(input)} {
		t.Run(fmt.Sprint("chunk ", chunk), func(t *testing.T) {
			c, peer := pair(t)
			c.SetMaxLine(limit)
			go func() {
				defer peer.Close()
				for s := input; len(s) > 0; s = s[min(chunk, len(s)):] {
					if _, err := io.WriteString(peer, s[:min(chunk, len(s))]); err != nil {
						return
					}
				}
			}()
			for i, want := range lines {
				got, err := c.readLine()
				if err != nil || string(got) != want {
					t.Fatalf("line %d: got %d bytes, %v; want %d bytes", i, len(got), err, len(want))
				}
			}
			if _, err := c.readLine(); !errors.Is(err, ErrLineTooLong) {
				t.Fatalf("line over the limit: err = %v, want ErrLineTooLong", err)
			}
			if got, err := c.readLine(); err != nil || string(got) != lineOfLen(70) {
				t.Fatalf("line after the long one: got %q, %v", got, err)
			}
			if _, err := c.readLine(); !errors.Is(err, io.EOF) {
				t.Fatalf("end: err = %v, want io.EOF", err)
			}
		})
	}
}

// TestConnRelease: the read buffer is given back only when nothing unread
// is in it, and reading goes on after.
func TestConnRelease(t *testing.T) {
	c, peer := pair(t)
	if _, err := io.WriteString(peer, lineOfLen(60)+"\n"+lineOfLen(61)+"\n"); err != nil {
		t.Fatal(err)
	}
	for i, n := range []int{60, 61} {
		if got, err := c.readLine(); err != nil || len(got) != n {
			t.Fatalf("line %d: %d bytes, %v; want %d", i, len(got), err, n)
		}
		// Both lines came in one read here (they are written at once),
		// so the second is still buffered after the first.
		if released := c.Release(); released != (i == 1) {
			t.Fatalf("after line %d: Release() = %v", i, released)
		}
	}
	if _, err := io.WriteString(peer, lineOfLen(62)+"\n"); err != nil {
		t.Fatal(err)
	}
	if got, err := c.readLine(); err != nil || len(got) != 62 {
		t.Fatalf("after Release: %d bytes, %v", len(got), err)
	}
}

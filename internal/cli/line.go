package cli

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// errLineTooLong is wrapped by the error for a stdin line over its limit.
var errLineTooLong = errors.New("line too long")

// readLine returns the next line of br, trimmed. A line over max bytes
// (its newline not counted) is consumed, never held whole, and reported
// as an error wrapping errLineTooLong; reading can go on after it.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		n := len(chunk)
		if err == nil {
			n-- // the newline
		}
		if len(buf)+n > max {
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: more than %d bytes", errLineTooLong, max)
		}
		buf = append(buf, chunk...)
		if !errors.Is(err, bufio.ErrBufferFull) {
			return bytes.TrimSpace(buf), err
		}
	}
}

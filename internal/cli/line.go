package cli

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// ErrLineTooLong is wrapped by the error for a stdin line over its limit.
var ErrLineTooLong = errors.New("line too long")

// ReadLine returns the next line of br, trimmed. A line over max bytes
// (its newline not counted) is consumed, never held whole, and reported
// as an error wrapping ErrLineTooLong; reading can go on after it.
func ReadLine(br *bufio.Reader, max int) ([]byte, error) {
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
			return nil, fmt.Errorf("%w: more than %d bytes", ErrLineTooLong, max)
		}
		buf = append(buf, chunk...)
		if !errors.Is(err, bufio.ErrBufferFull) {
			return bytes.TrimSpace(buf), err
		}
	}
}

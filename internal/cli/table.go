package cli

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/renderer"
	"github.com/olekukonko/tablewriter/tw"
)

// Table is how every tool prints a table: borderless, in the style of
// kubectl, left aligned, columns three spaces apart, no wrapping, each
// line stripped of the padding tablewriter leaves at its end.
type Table struct {
	*tablewriter.Table
	buf bytes.Buffer
	w   io.Writer
}

// NewTable returns a table that Render writes to w.
func NewTable(w io.Writer) *Table {
	t := &Table{w: w}
	t.Table = tablewriter.NewTable(&t.buf,
		tablewriter.WithRenderer(renderer.NewBlueprint(tw.Rendition{
			Borders: tw.BorderNone,
			Symbols: tw.NewSymbols(tw.StyleNone),
			Settings: tw.Settings{
				Separators: tw.Separators{BetweenRows: tw.Off, BetweenColumns: tw.Off},
				Lines:      tw.Lines{ShowHeaderLine: tw.Off},
			},
		})),
		tablewriter.WithPadding(tw.Padding{Right: "   ", Overwrite: true}),
		tablewriter.WithHeaderAutoFormat(tw.Off),
		tablewriter.WithHeaderAlignment(tw.AlignLeft),
		tablewriter.WithRowAlignment(tw.AlignLeft),
		tablewriter.WithRowAutoWrap(tw.WrapNone),
		tablewriter.WithHeaderAutoWrap(tw.WrapNone),
		tablewriter.WithTrimSpace(tw.Off), // a tree's indentation is part of its cell
	)
	return t
}

// Render writes the table.
func (t *Table) Render() error {
	if err := t.Table.Render(); err != nil {
		return err
	}
	var out bytes.Buffer
	for l := range bytes.Lines(t.buf.Bytes()) {
		out.Write(bytes.TrimRight(l, " \r\n"))
		out.WriteByte('\n')
	}
	_, err := t.w.Write(out.Bytes())
	return err
}

// MS is d in milliseconds.
func MS(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Pct prints a fraction as a whole percentage.
func Pct(f float64) string { return fmt.Sprintf("%.0f%%", f*100) }

// Level prints a tree level, "-" for none (negative).
func Level(l int) string {
	if l < 0 {
		return "-"
	}
	return strconv.Itoa(l)
}

// Dash prints n, "-" for 0 (unknown).
func Dash(n int) string {
	if n == 0 {
		return "-"
	}
	return strconv.Itoa(n)
}

// YesNo prints a bool as yes or no.
func YesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// Bytes prints a byte count in binary units, "-" for 0 (unknown).
func Bytes(n uint64) string {
	if n == 0 {
		return "-"
	}
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// Bitrate prints bits per second in decimal units.
func Bitrate(bps float64) string {
	switch {
	case bps >= 1e9:
		return fmt.Sprintf("%.2f Gb/s", bps/1e9)
	case bps >= 1e6:
		return fmt.Sprintf("%.2f Mb/s", bps/1e6)
	case bps >= 1e3:
		return fmt.Sprintf("%.1f kb/s", bps/1e3)
	}
	return fmt.Sprintf("%.0f b/s", bps)
}

// Plural prints n and what, with an s unless n is 1.
func Plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// CheckHostPort says whether a is HOST:PORT with a port from 1 to 65535.
func CheckHostPort(a string) error {
	_, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("%q is not HOST:PORT", a)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("%q: bad port %q", a, port)
	}
	return nil
}

// WriteTable writes rows under header (none when nil) as a Table.
func WriteTable(w io.Writer, header []string, rows [][]string) error {
	t := NewTable(w)
	if header != nil {
		t.Header(header)
	}
	if err := t.Bulk(rows); err != nil {
		return err
	}
	return t.Render()
}

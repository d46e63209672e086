package systest

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ocm-overlay/ocm/internal/lab"
	"github.com/ocm-overlay/ocm/internal/testutil"
)

// readmeMatch returns the submatches of re in the repository's README.md,
// failing t when the README has no such line: the README's recipes are what
// these tests run.
func readmeMatch(t *testing.T, re string) []string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(re).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatalf("README.md has no line matching %s", re)
	}
	return m
}

// mpvFrame is mpv's status line as the test asks for it.
var mpvFrame = regexp.MustCompile(`frame=(\d+)`)

// TestReadmeMPV plays the README's "watch with mpv" line through a relay:
// its flags as written, only the URL the test's own, plus what runs it
// without a display (no config, null video and audio outputs, 50 frames,
// a status line with the frame number).
func TestReadmeMPV(t *testing.T) {
	systemTest(t)
	mpv := testutil.RequireTool(t, "mpv")
	m := readmeMatch(t, `(?m)^mpv ([^'\n]*)'(rtsp://[^']+)'$`)
	flags := strings.Fields(m[1])
	t.Logf("README: mpv %s'%s'", m[1], m[2])

	origin := startMediator(t, "origin", "--test-source", "test")
	relay := startMediator(t, "relay")
	url := lab.Enhanced(relay.Addr, "test", origin.Addr)
	args := append([]string{"--no-config", "--vo=null", "--ao=null", "--frames=50",
		"--term-status-msg=frame=${estimated-frame-number}\n"}, flags...)
	out, errOut, err := run(t, mpv, append(args, url)...)
	t.Logf("mpv %s %s: %v\n%s", strings.Join(args, " "), url, err, lab.Tail(out, 10))
	if err != nil {
		t.Fatalf("mpv %s: %v\n%s\n%s", url, err, lab.Tail(out, 20), lab.Tail(errOut, 20))
	}
	if !strings.Contains(out, "VO: [null] 640x360") {
		t.Errorf("mpv opened no 640x360 video output:\n%s", lab.Tail(out, 20))
	}
	if !strings.Contains(out, "Exiting... (End of file)") {
		t.Errorf("mpv did not end normally:\n%s", lab.Tail(out, 20))
	}
	all := mpvFrame.FindAllStringSubmatch(errOut, -1)
	if len(all) == 0 {
		t.Fatalf("mpv printed no frame number:\n%s", lab.Tail(errOut, 20))
	}
	n, _ := strconv.Atoi(all[len(all)-1][1])
	t.Logf("mpv showed frames up to %d", n)
	if n+1 < minFrames {
		t.Errorf("mpv showed %d frames, want at least %d", n+1, minFrames)
	}
}

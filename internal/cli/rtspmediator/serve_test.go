package rtspmediator

import (
	"strings"
	"testing"

	"github.com/ocm-overlay/ocm/internal/streamurl"
)

func TestParseServeRelayed(t *testing.T) {
	got, err := parseServeRelayed([]string{"live=live?ms.example.org:8554", "/cam/=cams/1?192.0.2.7"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]streamurl.Origin{
		"live": {Host: "ms.example.org", Port: 8554, Media: "live"},
		"cam":  {Host: "192.0.2.7", Port: 554, Media: "cams/1"},
	}
	if len(got) != len(want) || got["live"] != want["live"] || got["cam"] != want["cam"] {
		t.Fatalf("got %v, want %v", got, want)
	}
	for _, bad := range []struct{ value, says string }{
		{"live", "want NAME=MEDIA?MSHOST[:MSPORT]"},
		{"=live?h:1", "want NAME=MEDIA?MSHOST[:MSPORT]"},
		{"live=live", "want NAME=MEDIA?MSHOST[:MSPORT]"},
		{"live=live?h:notaport", `"live=live?h:notaport"`},
		{"live=?h:1", `"live=?h:1"`},
	} {
		_, err := parseServeRelayed([]string{bad.value})
		if err == nil || !strings.Contains(err.Error(), bad.says) {
			t.Errorf("%q: error %v, want it to say %s", bad.value, err, bad.says)
		}
	}
	if _, err := parseServeRelayed([]string{"live=a?h:1", "live=b?h:1"}); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("a name given twice: error %v", err)
	}
}

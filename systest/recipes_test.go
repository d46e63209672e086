package systest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestRecipes runs the README's recipes in examples/recipes as written, on
// free ports (operate.sh runs in TestDemo, on the demo).
func TestRecipes(t *testing.T) {
	systemTest(t)
	for _, tc := range []struct {
		script string
		needs  []string
		want   []string
	}{
		{"publish.sh", []string{"ffmpeg", "libx264"}, []string{`"event":"summary"`}},
		{"fanout-fifo.sh", nil, []string{`"op":"add","ok":true`, `"op":"list","ok":true`}},
		// U's tree holds the root, R's the island's viewer.
		{"island.sh", nil, []string{`"event":"summary"`, "`-- root ", "`-- v1 "}},
	} {
		t.Run(tc.script, func(t *testing.T) {
			require(t, tc.needs...)
			base := freeDemoBase(t)
			cmd := exec.Command("bash", filepath.Join("../examples/recipes", tc.script))
			cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(base), "BIN="+filepath.Dir(tool("ocm-ctl")))
			out, err := cmd.CombinedOutput()
			t.Logf("%s:\n%s", tc.script, out)
			if err != nil {
				t.Fatalf("%s: %v", tc.script, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("%s printed no %s", tc.script, w)
				}
			}
			if strings.Contains(string(out), `"packets":0,`) {
				t.Error("the reader received nothing")
			}
		})
	}
}

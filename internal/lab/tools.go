package lab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Tools is the directory holding the built tools (rtsp-mediator,
// ocm-relay, ocm-server, rtp-fanout, ...).
type Tools string

// Path returns the path of the named tool.
func (d Tools) Path(name string) string { return filepath.Join(string(d), name) }

// Check says which tool is missing, if one is.
func (d Tools) Check(names ...string) error {
	for _, n := range names {
		if _, err := os.Stat(d.Path(n)); err != nil {
			return fmt.Errorf("%w (build the tools first)", err)
		}
	}
	return nil
}

// Build builds every command of the module rooted at moduleDir into dir.
func Build(moduleDir, dir string) (Tools, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	cmd := exec.Command(goTool, "build", "-o", dir+string(filepath.Separator), "./cmd/...")
	cmd.Dir = moduleDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/...: %v\n%s", err, out)
	}
	return Tools(dir), nil
}

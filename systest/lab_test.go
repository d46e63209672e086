package systest

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// labSh runs examples/lab.sh with the built tools and a log dir of the test.
func labSh(t *testing.T, dir string, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{"../examples/lab.sh"}, args...)...)
	cmd.Env = append(append(os.Environ(), "BIN="+filepath.Dir(tool("ocm-ctl")), "LAB_DIR="+dir), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

var labReader = regexp.MustCompile(`(?m)^(h[0-9]+)\s+site ([ab]).*reader: packets ([0-9]+)`)

// readerPackets maps each host of a status output to its reader's count.
func readerPackets(status string) map[string]int {
	m := map[string]int{}
	for _, sub := range labReader.FindAllStringSubmatch(status, -1) {
		n, _ := strconv.Atoi(sub[3])
		m[sub[1]] = n
	}
	return m
}

// TestLab builds examples/lab.sh's namespaces with 4 hosts, checks the tree
// spans both sites and every reader receives, kills one relay host's
// processes with SIGKILL, checks the others keep receiving, and checks
// down leaves no namespace, link or process of the lab.
func TestLab(t *testing.T) {
	systemTest(t)
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("TestLab needs root when CI is set")
		}
		t.Skip("network namespaces need root")
	}
	dir := t.TempDir()
	env := []string{"LAB_HOSTS=4"}
	if out, err := labSh(t, dir, nil, "status"); err == nil {
		t.Fatalf("a lab is already up on this machine:\n%s", out)
	}
	t.Cleanup(func() {
		if out, err := labSh(t, dir, nil, "down"); err != nil {
			t.Errorf("down: %v\n%s", err, out)
		}
		if out, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(out), "ocmlab-") {
			t.Errorf("namespaces left after down:\n%s", out)
		}
		if out, _ := exec.Command("ip", "link", "show").Output(); strings.Contains(string(out), "ocmlab-") {
			t.Errorf("links left after down:\n%s", out)
		}
		if out, err := exec.Command("pgrep", "-af", "10\\.77\\.0\\.2").Output(); err == nil {
			t.Errorf("processes of the lab left after down:\n%s", out)
		}
	})
	if out, err := labSh(t, dir, env, "up"); err != nil {
		t.Fatalf("up: %v\n%s", err, out)
	}

	// Every reader receives; the tree has hosts of both sites.
	var status string
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := labSh(t, dir, nil, "status")
		if err != nil {
			t.Fatalf("status: %v\n%s", err, out)
		}
		status = out
		counts := readerPackets(out)
		ok := len(counts) == 4
		for _, n := range counts {
			ok = ok && n > 0
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not every reader receives:\n%s", out)
		}
		time.Sleep(time.Second)
	}
	t.Logf("status:\n%s", status)
	inTree := regexp.MustCompile("(?m)^[|` -]*(h[0-9]+)\\s+([0-9]+)\\s").FindAllStringSubmatch(status, -1)
	sites := map[string]bool{}
	var level1 string
	for _, sub := range inTree {
		i, _ := strconv.Atoi(sub[1][1:])
		sites[map[bool]string{true: "a", false: "b"}[i%2 == 1]] = true
		if sub[2] == "1" && level1 == "" {
			level1 = sub[1]
		}
	}
	if len(inTree) != 4 || !sites["a"] || !sites["b"] {
		t.Fatalf("the tree does not hold the 4 hosts of both sites:\n%s", status)
	}

	// A relay host dies: every process in its namespace, SIGKILL.
	pids, err := exec.Command("ip", "netns", "pids", "ocmlab-"+level1).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range strings.Fields(string(pids)) {
		exec.Command("kill", "-9", p).Run()
	}
	before := readerPackets(status)
	time.Sleep(4 * time.Second)
	out, err := labSh(t, dir, nil, "status")
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	t.Logf("after killing %s:\n%s", level1, out)
	if strings.Contains(out, level1+" ") && regexp.MustCompile("(?m)[|` -]+"+level1+"\\s").MatchString(out) {
		t.Errorf("%s is still in the tree", level1)
	}
	after := readerPackets(out)
	for h, n := range after {
		if h == level1 {
			continue
		}
		if n <= before[h] {
			t.Errorf("reader of %s stopped: %d packets, then %d", h, before[h], n)
		}
	}
}

// Command testlog reads the JSON stream of `go test -json` on standard input, writes the plain
// text the tests printed (what `go test -v` would show) to the file named by its argument, and
// prints the whole output of every failed test and every package that failed to build.
//
// With -v, go test streams each test's log as it happens, so a failed test's reasons can be far
// above its "--- FAIL" line; grepping around that line loses them. Here each test's output is
// kept apart and printed together.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

type event struct {
	Action     string
	Package    string
	Test       string
	Output     string
	ImportPath string
}

// maxLines bounds what is printed for one failed test.
const maxLines = 400

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go test -json ... | testlog TEXT_LOG")
		os.Exit(2)
	}
	text, err := os.Create(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	defer text.Close()
	failed, outputs := read(os.Stdin, text)
	if len(failed) == 0 {
		return
	}
	fmt.Println("== failures in full:")
	for _, key := range failed {
		lines := strings.SplitAfter(outputs[key], "\n")
		if len(lines) > maxLines {
			lines = append(lines[:maxLines], fmt.Sprintf("... %d more lines\n", len(lines)-maxLines))
		}
		fmt.Printf("== %s\n%s", key, strings.Join(lines, ""))
	}
}

// read copies the output to text and returns the keys of what failed, in the order they
// failed, with the output of each test and package.
func read(in io.Reader, text io.Writer) (failed []string, outputs map[string]string) {
	kept := make(map[string]*strings.Builder)
	keep := func(key, s string) {
		if kept[key] == nil {
			kept[key] = new(strings.Builder)
		}
		kept[key].WriteString(s)
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			// Not an event: go test printed it directly (a build error before any JSON).
			line := sc.Text() + "\n"
			io.WriteString(text, line)
			keep("(go test)", line)
			continue
		}
		key := e.Package
		if e.ImportPath != "" {
			key = e.ImportPath
		}
		if e.Test != "" {
			key += " " + e.Test
		}
		switch e.Action {
		case "output", "build-output":
			io.WriteString(text, e.Output)
			keep(key, e.Output)
		case "fail", "build-fail":
			failed = append(failed, key)
		}
	}
	if kept["(go test)"] != nil {
		failed = append(failed, "(go test)")
	}
	outputs = make(map[string]string, len(kept))
	for key, b := range kept {
		outputs[key] = b.String()
	}
	return failed, outputs
}

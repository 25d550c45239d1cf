// Command netcc-cni is the CNI plugin a container runtime runs on a node.
//
// It does no networking itself. It reads the CNI environment and the network
// configuration on stdin, forwards them as one JSON request over the unix
// socket of the node's netcc daemon, and prints the daemon's answer:
//
//	request:  {"command", "containerID", "netns", "ifname", "args", "path",
//	           "config": <the stdin bytes, as a JSON string>}
//	response: {"code": 0 or a CNI error code, "stdout": "...", "stderr": "..."}
//
// VERSION is answered here. When the daemon cannot be reached, ADD, CHECK, GC
// and STATUS fail with code 11 ("try again later"), and DEL is written to a
// spool directory next to the socket for the daemon to finish, and succeeds.
//
// Nothing from the request is ever put on a command line, and the container
// ID and interface name are validated (CNI spec) before they name a file.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// Well-known error codes of the CNI spec.
const (
	errIncompatibleVersion = 1
	errInvalidEnvironment  = 4
	errIOFailure           = 5
	errDecodeFailure       = 6
	errInvalidConfig       = 7
	errTryAgainLater       = 11
)

// maxStdin bounds the network configuration read from stdin.
const maxStdin = 16 << 20

// cniError is a failure of the shim itself, printed on stdout as the CNI
// error object.
type cniError struct {
	Code    int
	Msg     string
	Details string
}

func (e *cniError) Error() string { return e.Msg }

func fail(code int, format string, args ...interface{}) *cniError {
	return &cniError{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// request is what the daemon receives (netcc.loader.cni.protocol).
type request struct {
	Command     string `json:"command"`
	ContainerID string `json:"containerID"`
	Netns       string `json:"netns"`
	Ifname      string `json:"ifname"`
	Args        string `json:"args"`
	Path        string `json:"path"`
	Config      string `json:"config"`
}

func main() {
	os.Exit(run(os.Stdin, os.Stdout, os.Stderr, os.Getenv))
}

// run is the whole plugin; it returns the process's exit status.
func run(stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	version := latestVersion // the version errors are reported in, until negotiated
	out, err := handle(stdin, stderr, getenv, &version)
	if err != nil {
		writeError(stdout, version, err)
		return 1
	}
	if _, werr := stdout.Write(out); werr != nil {
		return 1
	}
	return 0
}

// handle runs one CNI command and returns what goes to stdout on success.
// *version is set to the negotiated CNI version as soon as it is known.
func handle(stdin io.Reader, stderr io.Writer, getenv func(string) string, version *string) ([]byte, *cniError) {
	command := getenv("CNI_COMMAND")
	if !knownCommand(command) {
		return nil, fail(errInvalidEnvironment, "CNI_COMMAND %q is not one of ADD, DEL, CHECK, GC, STATUS, VERSION", command)
	}
	raw, err := io.ReadAll(io.LimitReader(stdin, maxStdin+1))
	if err != nil {
		return nil, fail(errIOFailure, "reading the network configuration from stdin: %v", err)
	}
	if len(raw) > maxStdin {
		return nil, fail(errDecodeFailure, "network configuration on stdin is larger than %d bytes", maxStdin)
	}
	if command == "VERSION" {
		return versionAnswer(raw), nil
	}
	conf, cerr := parseConfig(raw)
	if cerr != nil {
		return nil, cerr
	}
	*version = conf.Version
	req := request{
		Command:     command,
		ContainerID: getenv("CNI_CONTAINERID"),
		Netns:       getenv("CNI_NETNS"),
		Ifname:      getenv("CNI_IFNAME"),
		Args:        getenv("CNI_ARGS"),
		Path:        getenv("CNI_PATH"),
		Config:      string(raw), // valid UTF-8: parseConfig checked it
	}
	if cerr := validateEnv(&req); cerr != nil {
		return nil, cerr
	}
	body, err := json.Marshal(&req)
	if err != nil {
		return nil, fail(errIOFailure, "encoding the request: %v", err)
	}
	resp, err := ask(conf.Socket, body, conf.Timeout)
	if err != nil {
		if command == "DEL" {
			return spoolDel(conf.Socket, &req, body, err)
		}
		return nil, &cniError{
			Code:    errTryAgainLater,
			Msg:     fmt.Sprintf("netcc daemon not reachable at %s; try again later", conf.Socket),
			Details: err.Error(),
		}
	}
	if resp.Stderr != "" {
		_, _ = io.WriteString(stderr, resp.Stderr)
	}
	if resp.Code != 0 {
		return nil, daemonError(resp)
	}
	return []byte(resp.Stdout), nil
}

func knownCommand(c string) bool {
	switch c {
	case "ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION":
		return true
	}
	return false
}

// errorJSON is the CNI error object.
type errorJSON struct {
	CNIVersion string `json:"cniVersion"`
	Code       int    `json:"code"`
	Msg        string `json:"msg"`
	Details    string `json:"details,omitempty"`
}

func writeError(stdout io.Writer, version string, e *cniError) {
	b, _ := json.Marshal(errorJSON{CNIVersion: version, Code: e.Code, Msg: e.Msg, Details: e.Details})
	_, _ = stdout.Write(append(b, '\n'))
}

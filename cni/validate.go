package main

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// validateEnv checks the CNI environment a command needs (CNI spec,
// "Parameters"): the container ID and interface name name files in the DEL
// spool, so they are checked before any use.
func validateEnv(r *request) *cniError {
	env := []struct{ name, value string }{
		{"CNI_CONTAINERID", r.ContainerID}, {"CNI_NETNS", r.Netns}, {"CNI_IFNAME", r.Ifname},
		{"CNI_ARGS", r.Args}, {"CNI_PATH", r.Path},
	}
	for _, e := range env {
		if !utf8.ValidString(e.value) {
			return fail(errInvalidEnvironment, "%s is not valid UTF-8", e.name)
		}
	}
	switch r.Command {
	case "ADD", "CHECK", "DEL":
		if r.Netns == "" && r.Command != "DEL" { // DEL must work when the netns is gone
			return fail(errInvalidEnvironment, "CNI_NETNS is required for %s", r.Command)
		}
		if msg := containerIDProblem(r.ContainerID); msg != "" {
			return fail(errInvalidEnvironment, "CNI_CONTAINERID %q: %s", r.ContainerID, msg)
		}
		if msg := ifnameProblem(r.Ifname); msg != "" {
			return fail(errInvalidEnvironment, "CNI_IFNAME %q: %s", r.Ifname, msg)
		}
	}
	return nil
}

// maxContainerID bounds container IDs (the spec sets no bound; runtimes use
// 64 hex digits). The daemon has the same bound.
const maxContainerID = 1024

// containerIDProblem: not empty, an alphanumeric character, then any of
// alphanumerics, '_', '.', '-'.
func containerIDProblem(id string) string {
	if id == "" {
		return "missing"
	}
	if len(id) > maxContainerID {
		return "longer than 1024 characters"
	}
	for i, c := range id {
		alnum := c < unicode.MaxASCII && (unicode.IsLetter(c) || unicode.IsDigit(c))
		if !alnum && (i == 0 || !strings.ContainsRune("_.-", c)) {
			return "must start with a letter or digit, followed by letters, digits, '_', '.' or '-'"
		}
	}
	return ""
}

// ifnameProblem: not empty, not "." or "..", under 16 bytes, no '/', ':' or
// whitespace (the kernel's rules for interface names).
func ifnameProblem(name string) string {
	switch {
	case name == "":
		return "missing"
	case len(name) > 15:
		return "longer than 15 bytes"
	case name == "." || name == "..":
		return "must not be . or .."
	case strings.IndexFunc(name, func(c rune) bool { return c == '/' || c == ':' || unicode.IsSpace(c) }) >= 0:
		return "must not contain '/', ':' or whitespace"
	}
	return ""
}

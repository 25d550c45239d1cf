package main

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// supportedVersions are the CNI spec versions netcc implements, oldest first.
var supportedVersions = []string{"1.0.0", "1.1.0"}

var latestVersion = supportedVersions[len(supportedVersions)-1]

const (
	defaultSocket  = "/run/netcc/cni.sock"
	defaultTimeout = 120 * time.Second
	maxTimeout     = time.Hour
	maxSocketPath  = 107 // sun_path holds 108 bytes with the terminating NUL
)

// config is the part of the network configuration the shim itself reads; the
// daemon reads and validates all of it.
type config struct {
	Version string        // negotiated CNI version
	Socket  string        // the daemon's unix socket
	Timeout time.Duration // for the whole exchange with the daemon
}

// rawConfig is how those fields appear in the JSON.
type rawConfig struct {
	CNIVersion     *string  `json:"cniVersion"`
	CNIVersions    []string `json:"cniVersions"`
	Socket         *string  `json:"socket"`
	TimeoutSeconds *float64 `json:"timeoutSeconds"`
}

// parseConfig decodes the network configuration and negotiates its version.
func parseConfig(raw []byte) (*config, *cniError) {
	if !utf8.Valid(raw) {
		return nil, fail(errDecodeFailure, "network configuration on stdin is not valid UTF-8")
	}
	var rc rawConfig
	if err := json.Unmarshal(raw, &rc); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return nil, fail(errInvalidConfig, "network configuration: field %q has the wrong type", typeErr.Field)
		}
		return nil, fail(errDecodeFailure, "network configuration is not a JSON object: %v", err)
	}
	version, cerr := negotiate(rc.CNIVersion, rc.CNIVersions)
	if cerr != nil {
		return nil, cerr
	}
	c := &config{Version: version, Socket: defaultSocket, Timeout: defaultTimeout}
	if rc.Socket != nil {
		s := *rc.Socket
		if !filepath.IsAbs(s) || filepath.Clean(s) != s || len(s) > maxSocketPath || strings.ContainsRune(s, 0) {
			return nil, fail(errInvalidConfig, "network configuration: socket %q must be a clean absolute path of at most %d bytes", s, maxSocketPath)
		}
		c.Socket = s
	}
	if rc.TimeoutSeconds != nil {
		t := time.Duration(*rc.TimeoutSeconds * float64(time.Second))
		if t <= 0 || t > maxTimeout {
			return nil, fail(errInvalidConfig, "network configuration: timeoutSeconds must be above 0 and at most %d", int(maxTimeout.Seconds()))
		}
		c.Timeout = t
	}
	return c, nil
}

// negotiate picks the CNI version: `cniVersion` when the runtime set it (it
// names the version chosen for this call), otherwise the highest entry of
// `cniVersions` that netcc supports.
func negotiate(version *string, versions []string) (string, *cniError) {
	if version != nil {
		if supported(*version) {
			return *version, nil
		}
		return "", fail(errIncompatibleVersion, "cniVersion %q is not supported; netcc supports %s", *version, strings.Join(supportedVersions, ", "))
	}
	best := ""
	for _, v := range versions {
		if supported(v) && (best == "" || versionLess(best, v)) {
			best = v
		}
	}
	if best == "" {
		return "", fail(errIncompatibleVersion, "none of cniVersions %q is supported; netcc supports %s", versions, strings.Join(supportedVersions, ", "))
	}
	return best, nil
}

func supported(v string) bool {
	for _, s := range supportedVersions {
		if v == s {
			return true
		}
	}
	return false
}

// versionLess compares two supported (well-formed "X.Y.Z") versions.
func versionLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < 3; i++ {
		x, _ := strconv.Atoi(pa[i])
		y, _ := strconv.Atoi(pb[i])
		if x != y {
			return x < y
		}
	}
	return false
}

// versionAnswer is the VERSION result: the input's cniVersion when netcc
// supports it (the spec asks for the version in use), else the latest.
func versionAnswer(raw []byte) []byte {
	var in struct {
		CNIVersion string `json:"cniVersion"`
	}
	_ = json.Unmarshal(raw, &in) // VERSION needs no valid configuration
	v := latestVersion
	if supported(in.CNIVersion) {
		v = in.CNIVersion
	}
	b, _ := json.Marshal(struct {
		CNIVersion        string   `json:"cniVersion"`
		SupportedVersions []string `json:"supportedVersions"`
	}{v, supportedVersions})
	return append(b, '\n')
}

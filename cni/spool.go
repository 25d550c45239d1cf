package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// spoolDir is where DELs wait for the daemon: next to its socket.
func spoolDir(socket string) string {
	return filepath.Join(filepath.Dir(socket), "pending-del")
}

// spoolDel records a DEL the daemon could not take, as
// <socket dir>/pending-del/<containerID>-<ifname>.json holding the request,
// and reports success: the daemon finishes it when it runs (DEL is
// idempotent, so recording one the daemon did receive is harmless). The file
// appears atomically (written and synced under a temporary name, then
// renamed), so the daemon never reads half of one.
func spoolDel(socket string, req *request, body []byte, cause error) ([]byte, *cniError) {
	dir := spoolDir(socket)
	if err := writeSpool(dir, req, body); err != nil {
		return nil, &cniError{
			Code:    errIOFailure,
			Msg:     fmt.Sprintf("netcc daemon not reachable at %s, and the DEL could not be recorded in %s", socket, dir),
			Details: fmt.Sprintf("daemon: %v; spool: %v", cause, err),
		}
	}
	return nil, nil
}

func writeSpool(dir string, req *request, body []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-") // O_EXCL, mode 0600; not *.json, so never read half-written
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing left to remove
	if _, err := tmp.Write(body); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, spoolName(dir, req))); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// spoolName is <containerID>-<ifname>.json. Both may contain '-', so two
// attachments can share that name ("a-b"+"c", "a"+"b-c"); a name held by
// another attachment, or one too long for a file name, falls back to a
// digest of the pair. The same attachment keeps its name: a repeated DEL
// replaces the earlier record.
func spoolName(dir string, req *request) string {
	name := req.ContainerID + "-" + req.Ifname + ".json"
	if len(name) <= 255 {
		held, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return name // free (or unreadable: the rename replaces it)
		}
		var other request
		if json.Unmarshal(held, &other) == nil && other.ContainerID == req.ContainerID && other.Ifname == req.Ifname {
			return name
		}
	}
	sum := sha256.Sum256([]byte(req.ContainerID + "\x00" + req.Ifname))
	return "del-" + hex.EncodeToString(sum[:16]) + ".json"
}

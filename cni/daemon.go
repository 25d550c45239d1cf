package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"time"
)

// maxResponse bounds the daemon's answer.
const maxResponse = 16 << 20

// response is the daemon's answer (netcc.loader.cni.protocol).
type response struct {
	Code   *int   `json:"code"`
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
}

// answer is a response whose code was present.
type answer struct {
	Code   int
	Stdout string
	Stderr string
}

// ask sends one request to the daemon and reads its one response. Any error
// means the daemon gave no usable answer (not running, refused, timed out,
// closed the connection early, answered garbage).
func ask(socket string, body []byte, timeout time.Duration) (*answer, error) {
	deadline := time.Now().Add(timeout)
	dialer := net.Dialer{Deadline: deadline}
	conn, err := dialer.Dial("unix", socket)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, err
	}
	if _, err := conn.Write(body); err != nil {
		return nil, err
	}
	// The end of the request is the end of the stream.
	if err := conn.(*net.UnixConn).CloseWrite(); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(conn, maxResponse+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxResponse {
		return nil, fmt.Errorf("response larger than %d bytes", maxResponse)
	}
	var r response
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("unreadable response (%d bytes): %v", len(data), err)
	}
	if r.Code == nil {
		return nil, fmt.Errorf("response without a code")
	}
	return &answer{Code: *r.Code, Stdout: r.Stdout, Stderr: r.Stderr}, nil
}

// daemonError is the CNI error the daemon reported: its own error object when
// stdout holds one, otherwise one made from its code and stderr.
func daemonError(a *answer) *cniError {
	var e errorJSON
	if json.Unmarshal([]byte(a.Stdout), &e) == nil && e.Code != 0 && e.Msg != "" {
		return &cniError{Code: e.Code, Msg: e.Msg, Details: e.Details}
	}
	msg := a.Stderr
	if msg == "" {
		msg = fmt.Sprintf("netcc daemon failed with code %d", a.Code)
	}
	return &cniError{Code: a.Code, Msg: msg}
}

package sshtest

import (
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
)

// Stats is what clients asked of an in-process Server: how many
// connections, sessions (each an exec or a subsystem: a fork and a shell in
// a real sshd), which commands, and the SFTP requests by type.
type Stats struct {
	Conns        int            // TCP connections accepted
	Sessions     int            // session channels opened
	Commands     []string       // exec requests, in order of arrival
	SFTPChannels int            // sftp subsystem sessions
	SFTP         map[string]int // SFTP requests by type ("open", "write", "lstat" …)
}

// SFTPRequests is the number of SFTP requests of all types (the round trips
// a client that waits for each answer pays).
func (s Stats) SFTPRequests() int {
	n := 0
	for _, c := range s.SFTP {
		n += c
	}
	return n
}

type stats struct {
	mu sync.Mutex
	Stats
	queue sync.Mutex // SlowHandshakes: one connection at a time
}

func (s *stats) add(f func()) {
	s.mu.Lock()
	f()
	s.mu.Unlock()
}

// Stats is a snapshot of what the server was asked so far.
func (s *Server) Stats() Stats {
	if s.stats == nil {
		return Stats{}
	}
	s.stats.mu.Lock()
	defer s.stats.mu.Unlock()
	out := s.stats.Stats
	out.Commands = slices.Clone(out.Commands)
	out.SFTP = maps.Clone(out.SFTP)
	return out
}

// sftpCounter counts the SFTP requests read from its session.
type sftpCounter struct {
	io.ReadWriteCloser
	st *stats
	f  *frames
}

func (c sftpCounter) Read(p []byte) (int, error) {
	n, err := c.ReadWriteCloser.Read(p)
	c.f.feed(p[:n], func(typ byte) { c.st.add(func() { c.st.SFTP[sftpType(typ)]++ }) })
	return n, err
}

// frames follows SFTP's framing (uint32 length, then the packet whose
// first byte is its type) across reads of any size.
type frames struct {
	hdr      []byte // length bytes seen of the next packet
	left     uint32 // bytes of the current packet not yet seen
	needType bool   // the current packet's first byte is still to come
}

func (f *frames) feed(b []byte, packet func(typ byte)) {
	for len(b) > 0 {
		switch {
		case f.needType:
			packet(b[0])
			b, f.left, f.needType = b[1:], f.left-1, false
		case f.left > 0:
			n := min(uint32(len(b)), f.left)
			b, f.left = b[n:], f.left-n
		default:
			need := min(4-len(f.hdr), len(b))
			f.hdr, b = append(f.hdr, b[:need]...), b[need:]
			if len(f.hdr) == 4 {
				f.left = binary.BigEndian.Uint32(f.hdr)
				f.hdr, f.needType = f.hdr[:0], f.left > 0
			}
		}
	}
}

// sftpType names an SFTP packet type (draft-ietf-secsh-filexfer-02).
func sftpType(t byte) string {
	names := map[byte]string{1: "init", 3: "open", 4: "close", 5: "read", 6: "write", 7: "lstat", 8: "fstat",
		9: "setstat", 10: "fsetstat", 11: "opendir", 12: "readdir", 13: "remove", 14: "mkdir", 15: "rmdir",
		16: "realpath", 17: "stat", 18: "rename", 19: "readlink", 20: "symlink", 200: "extended"}
	if n, ok := names[t]; ok {
		return n
	}
	return fmt.Sprintf("type-%d", t)
}

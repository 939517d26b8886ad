package auth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Peer is the process at the other end of a unix socket connection, as the kernel recorded it
// when the peer connected (SO_PEERCRED, SO_PEERGROUPS).
type Peer struct {
	// UID and GID are the peer's effective user and group IDs.
	UID, GID uint32
	// PID is the peer's process ID.
	PID int32
	// Groups are the peer's supplementary groups.
	Groups []uint32
}

// InGroup reports whether gid is the peer's group or one of its supplementary groups.
func (p Peer) InGroup(gid uint32) bool {
	if p.GID == gid {
		return true
	}
	for _, g := range p.Groups {
		if g == gid {
			return true
		}
	}
	return false
}

// PeerOf reads the credentials of a unix socket connection's peer.
func PeerOf(conn net.Conn) (Peer, error) {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return Peer{}, fmt.Errorf("peer credentials: %T is not a unix socket connection", conn)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return Peer{}, fmt.Errorf("peer credentials: %w", err)
	}
	var (
		peer  Peer
		opErr error
	)
	if err := raw.Control(func(fd uintptr) {
		cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if err != nil {
			opErr = fmt.Errorf("SO_PEERCRED: %w", err)
			return
		}
		peer = Peer{UID: cred.Uid, GID: cred.Gid, PID: cred.Pid}
		peer.Groups, opErr = peerGroups(int(fd))
	}); err != nil {
		return Peer{}, fmt.Errorf("peer credentials: %w", err)
	}
	if opErr != nil {
		return Peer{}, fmt.Errorf("peer credentials: %w", opErr)
	}
	return peer, nil
}

// peerGroups reads SO_PEERGROUPS, growing the buffer when the peer has many groups.
func peerGroups(fd int) ([]uint32, error) {
	groups := make([]uint32, 32)
	for {
		size := uint32(len(groups) * 4)
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&groups[0])), uintptr(unsafe.Pointer(&size)), 0)
		switch {
		case errno == 0:
			return groups[:size/4], nil
		case errors.Is(errno, unix.ERANGE) && int(size/4) > len(groups):
			groups = make([]uint32, size/4)
		default:
			return nil, fmt.Errorf("SO_PEERGROUPS: %w", errno)
		}
	}
}

// peerKey is the context key of a connection's Peer.
type peerKey struct{}

// peerErrKey is the context key of the error reading a connection's Peer.
type peerErrKey struct{}

// ConnContext is an http.Server ConnContext: it records, once per connection, the peer of a
// unix socket connection for Policy to check.
func ConnContext(ctx context.Context, conn net.Conn) context.Context {
	if _, ok := conn.(*net.UnixConn); !ok {
		return ctx
	}
	peer, err := PeerOf(conn)
	if err != nil {
		return context.WithValue(ctx, peerErrKey{}, err)
	}
	return context.WithValue(ctx, peerKey{}, peer)
}

// PeerFrom returns the peer ConnContext recorded in ctx.
func PeerFrom(ctx context.Context) (Peer, error) {
	if peer, ok := ctx.Value(peerKey{}).(Peer); ok {
		return peer, nil
	}
	if err, ok := ctx.Value(peerErrKey{}).(error); ok {
		return Peer{}, err
	}
	return Peer{}, errors.New("peer credentials: the connection's credentials were not recorded")
}

package auth

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// serve runs one request through policy and reports whether the handler ran, with the answer.
func serve(t *testing.T, policy *Policy, r *http.Request) (bool, *httptest.ResponseRecorder) {
	t.Helper()
	ran := false
	w := httptest.NewRecorder()
	policy.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { ran = true })).ServeHTTP(w, r)
	return ran, w
}

// connectRequest is a Connect unary JSON request, as curl sends it.
func connectRequest(ctx context.Context) *http.Request {
	r := httptest.NewRequestWithContext(ctx, http.MethodPost, "/cedana.daemon.v1.DaemonService/Run", strings.NewReader("{}"))
	r.Header.Set("Content-Type", "application/json")
	return r
}

func TestUnixPolicy(t *testing.T) {
	groups := []Group{{GID: 4242, Name: "cedana"}}
	tests := []struct {
		name    string
		groups  []Group
		peer    *Peer
		allowed bool
		message string
	}{
		{name: "root", peer: &Peer{UID: 0, GID: 0, PID: 10}, allowed: true},
		{name: "root with groups configured", groups: groups, peer: &Peer{UID: 0, PID: 10}, allowed: true},
		{name: "user, no groups configured", peer: &Peer{UID: 1000, GID: 1000, PID: 11}, message: "uid 1000 (pid 11) may not use the cedana daemon: it accepts root only"},
		{
			name: "user outside the group", groups: groups, peer: &Peer{UID: 1000, GID: 1000, PID: 12, Groups: []uint32{100}},
			message: "it accepts root and members of cedana (gid 4242): ask an administrator to add you (usermod -aG cedana USER)",
		},
		{name: "member by supplementary group", groups: groups, peer: &Peer{UID: 1000, GID: 1000, Groups: []uint32{100, 4242}}, allowed: true},
		{name: "member by primary group", groups: groups, peer: &Peer{UID: 1000, GID: 4242}, allowed: true},
		{name: "credentials not recorded", groups: groups, message: "credentials were not recorded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.peer != nil {
				ctx = context.WithValue(ctx, peerKey{}, *tt.peer)
			}
			ran, w := serve(t, NewUnixPolicy(tt.groups, quiet()), connectRequest(ctx))
			assert.Equal(t, tt.allowed, ran)
			if tt.allowed {
				return
			}
			assert.Equal(t, http.StatusForbidden, w.Code)
			assert.Contains(t, w.Body.String(), `"code":"permission_denied"`)
			assert.Contains(t, w.Body.String(), tt.message)
		})
	}
}

func TestTokenPolicy(t *testing.T) {
	tests := []struct {
		name    string
		header  string
		allowed bool
		message string
	}{
		{name: "right token", header: "Bearer s3cret", allowed: true},
		{name: "no header", message: "this daemon requires a bearer token"},
		{name: "empty token", header: "Bearer ", message: "requires a bearer token"},
		{name: "another scheme", header: "Basic s3cret", message: "requires a bearer token"},
		{name: "wrong token", header: "Bearer s3cre", message: "wrong bearer token"},
		{name: "longer token", header: "Bearer s3cret2", message: "wrong bearer token"},
	}
	policy := NewTokenPolicy("s3cret", quiet())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := connectRequest(context.Background())
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			ran, w := serve(t, policy, r)
			assert.Equal(t, tt.allowed, ran)
			if tt.allowed {
				return
			}
			assert.Equal(t, http.StatusUnauthorized, w.Code)
			assert.Contains(t, w.Body.String(), `"code":"unauthenticated"`)
			assert.Contains(t, w.Body.String(), tt.message)
		})
	}
}

// TestRefusalInEveryProtocol: a gRPC caller gets the refusal as grpc-status, a plain HTTP one as
// an HTTP status.
func TestRefusalInEveryProtocol(t *testing.T) {
	policy := NewTokenPolicy("s3cret", quiet())
	r := httptest.NewRequest(http.MethodPost, "/cedana.daemon.v1.DaemonService/Attach", strings.NewReader(""))
	r.Header.Set("Content-Type", "application/grpc")
	ran, w := serve(t, policy, r)
	assert.False(t, ran)
	assert.Equal(t, "16", w.Header().Get("Grpc-Status"), "unauthenticated is gRPC status 16")

	ran, w = serve(t, policy, httptest.NewRequest(http.MethodGet, "/", nil))
	assert.False(t, ran)
	assert.Equal(t, http.StatusUnauthorized, w.Code)
}

func TestResolveGroups(t *testing.T) {
	groups, err := ResolveGroups([]string{"0", " 4242 ", "root"})
	require.NoError(t, err)
	assert.Equal(t, []Group{{GID: 0, Name: "root"}, {GID: 4242, Name: "4242"}, {GID: 0, Name: "root"}}, groups)
	assert.Equal(t, "gid 4242", groups[1].String())
	assert.Equal(t, "root (gid 0)", groups[0].String())

	_, err = ResolveGroups([]string{"no-such-group-xyz"})
	assert.ErrorContains(t, err, "groupadd no-such-group-xyz")
}

// TestPeerOf reads this process's own credentials across a real unix socket.
func TestPeerOf(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	defer ln.Close()
	client, err := net.Dial("unix", path)
	require.NoError(t, err)
	defer client.Close()
	server, err := ln.Accept()
	require.NoError(t, err)
	defer server.Close()

	peer, err := PeerFrom(ConnContext(context.Background(), server))
	require.NoError(t, err)
	assert.Equal(t, uint32(os.Geteuid()), peer.UID)
	assert.Equal(t, uint32(os.Getegid()), peer.GID)
	assert.Equal(t, int32(os.Getpid()), peer.PID)
	own, err := os.Getgroups()
	require.NoError(t, err)
	for _, g := range own {
		assert.True(t, peer.InGroup(uint32(g)), "supplementary group %d", g)
	}

	tcpLn, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer tcpLn.Close()
	conn, err := net.Dial("tcp", tcpLn.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	_, err = PeerOf(conn)
	assert.ErrorContains(t, err, "not a unix socket connection")
	ctx := context.Background()
	assert.Equal(t, ctx, ConnContext(ctx, conn), "TCP connections carry no peer")
}

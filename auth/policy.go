// Package auth decides who may call the cedana daemon, before any handler runs. The daemon is root
// and can run, restore and kill any process, so whoever may call it is root in effect:
//   - on the unix socket, the caller's credentials (SO_PEERCRED) must be root's, or the caller must
//     be a member of a group the operator allowed (auth.allowed_groups);
//   - on TCP, every request must carry the daemon's bearer token, compared in constant time.
package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os/user"
	"strconv"
	"strings"

	"connectrpc.com/connect"
)

// Group is a group whose members may use the daemon's unix socket.
type Group struct {
	// GID is the group's ID.
	GID uint32
	// Name is the group's name, or its GID when it has none on this machine.
	Name string
}

// String names the group for messages: "cedana (gid 998)".
func (g Group) String() string {
	if g.Name == strconv.FormatUint(uint64(g.GID), 10) {
		return "gid " + g.Name
	}
	return fmt.Sprintf("%s (gid %d)", g.Name, g.GID)
}

// ResolveGroups turns group names and numeric gids into Groups. A name this machine does not know
// is an error; a gid need not have a name.
func ResolveGroups(list []string) ([]Group, error) {
	var groups []Group
	for _, item := range list {
		item = strings.TrimSpace(item)
		if gid, err := strconv.ParseUint(item, 10, 32); err == nil {
			name := item
			if g, err := user.LookupGroupId(item); err == nil {
				name = g.Name
			}
			groups = append(groups, Group{GID: uint32(gid), Name: name})
			continue
		}
		g, err := user.LookupGroup(item)
		if err != nil {
			return nil, fmt.Errorf("auth.allowed_groups: %w: create the group (groupadd %s) or name an existing one", err, item)
		}
		gid, err := strconv.ParseUint(g.Gid, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("auth.allowed_groups: group %s has gid %q: %w", item, g.Gid, err)
		}
		groups = append(groups, Group{GID: uint32(gid), Name: g.Name})
	}
	return groups, nil
}

// Transport is how callers reach the daemon.
type Transport int

// The transports a Policy guards.
const (
	// Unix callers are authorized by their credentials.
	Unix Transport = iota
	// TCP callers are authorized by the bearer token.
	TCP
)

// Policy authorizes every request of one listener.
type Policy struct {
	transport Transport
	groups    []Group
	token     [sha256.Size]byte
	log       *slog.Logger
	errors    *connect.ErrorWriter
}

// NewUnixPolicy authorizes root and members of groups, by the peer credentials ConnContext records.
func NewUnixPolicy(groups []Group, log *slog.Logger) *Policy {
	return &Policy{transport: Unix, groups: groups, log: log, errors: connect.NewErrorWriter()}
}

// NewTokenPolicy authorizes requests that carry "Authorization: Bearer <token>". An empty token
// is a programming error: the daemon refuses to listen on TCP without one.
func NewTokenPolicy(token string, log *slog.Logger) *Policy {
	if token == "" {
		panic("auth: NewTokenPolicy with an empty token")
	}
	return &Policy{transport: TCP, token: sha256.Sum256([]byte(token)), log: log, errors: connect.NewErrorWriter()}
}

// Handler runs next only for authorized requests; others get permission_denied (unix) or
// unauthenticated (TCP) in the caller's protocol, and are logged.
func (p *Policy) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := p.authorize(r); err != nil {
			p.refuse(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// authorize returns nil for an authorized request, else the Connect error to answer with.
func (p *Policy) authorize(r *http.Request) *connect.Error {
	if p.transport == TCP {
		return p.checkToken(r)
	}
	peer, err := PeerFrom(r.Context())
	if err != nil {
		p.log.Warn("refused a caller whose credentials cannot be read", "procedure", r.URL.Path, "error", err)
		return connect.NewError(connect.CodePermissionDenied, err)
	}
	if peer.UID == 0 {
		return nil
	}
	for _, g := range p.groups {
		if peer.InGroup(g.GID) {
			return nil
		}
	}
	p.log.Warn("refused a caller", "uid", peer.UID, "gid", peer.GID, "pid", peer.PID, "procedure", r.URL.Path)
	return connect.NewError(connect.CodePermissionDenied, fmt.Errorf("uid %d (pid %d) may not use the cedana daemon: %s", peer.UID, peer.PID, p.whoMay()))
}

// whoMay says who may use the daemon's socket, and how to become one of them.
func (p *Policy) whoMay() string {
	if len(p.groups) == 0 {
		return "it accepts root only (an administrator can let a group in with auth.allowed_groups in the daemon's config.json)"
	}
	names := make([]string, len(p.groups))
	for i, g := range p.groups {
		names[i] = g.String()
	}
	return fmt.Sprintf("it accepts root and members of %s: ask an administrator to add you (usermod -aG %s USER), then log in again",
		strings.Join(names, ", "), p.groups[0].Name)
}

// checkToken compares the request's bearer token with the daemon's in constant time (of digests,
// so that not even the length leaks).
func (p *Policy) checkToken(r *http.Request) *connect.Error {
	header := r.Header.Get("Authorization")
	given, ok := strings.CutPrefix(header, "Bearer ")
	if !ok || given == "" {
		p.log.Warn("refused a caller without a token", "remote", r.RemoteAddr, "procedure", r.URL.Path)
		return connect.NewError(connect.CodeUnauthenticated,
			errors.New("this daemon requires a bearer token: set CEDANA_TOKEN (or token_file in the client's config.json) to the daemon's token"))
	}
	sum := sha256.Sum256([]byte(given))
	if subtle.ConstantTimeCompare(sum[:], p.token[:]) != 1 {
		p.log.Warn("refused a caller with a wrong token", "remote", r.RemoteAddr, "procedure", r.URL.Path)
		return connect.NewError(connect.CodeUnauthenticated,
			errors.New("wrong bearer token: set CEDANA_TOKEN (or token_file in the client's config.json) to the daemon's token"))
	}
	return nil
}

// refuse answers in the caller's protocol (Connect, gRPC or gRPC-Web), or as plain HTTP.
func (p *Policy) refuse(w http.ResponseWriter, r *http.Request, err *connect.Error) {
	if p.errors.IsSupported(r) {
		_ = p.errors.Write(w, r, err)
		return
	}
	status := http.StatusForbidden
	if err.Code() == connect.CodeUnauthenticated {
		status = http.StatusUnauthorized
	}
	http.Error(w, err.Message(), status)
}

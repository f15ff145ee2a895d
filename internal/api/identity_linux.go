package api

import (
	"context"
	"net"
	"os/user"
	"strconv"

	"golang.org/x/sys/unix"
)

// Caller is who sent a request, as far as the transport can tell.
type Caller struct {
	User   string // "root", or "uid:1000" when the uid has no name
	UID    int    // -1 when unknown
	Source string // "unix" or the remote address
}

type callerKey struct{}

// ConnContext records the peer of each connection: on the Unix socket the
// kernel's SO_PEERCRED says which uid connected, which cannot be forged.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	caller := Caller{User: "unknown", UID: -1, Source: c.RemoteAddr().String()}
	if uc, ok := c.(*net.UnixConn); ok {
		caller.Source = "unix"
		if raw, err := uc.SyscallConn(); err == nil {
			raw.Control(func(fd uintptr) {
				if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
					caller.UID = int(cred.Uid)
					caller.User = userName(cred.Uid)
				}
			})
		}
	}
	return context.WithValue(ctx, callerKey{}, caller)
}

func userName(uid uint32) string {
	if u, err := user.LookupId(strconv.Itoa(int(uid))); err == nil {
		return u.Username
	}
	return "uid:" + strconv.Itoa(int(uid))
}

// CallerFrom returns the request's caller (zero-value "unknown" if the
// server was not set up with ConnContext, as in unit tests).
func CallerFrom(ctx context.Context) Caller {
	if c, ok := ctx.Value(callerKey{}).(Caller); ok {
		return c
	}
	return Caller{User: "unknown", UID: -1, Source: "unknown"}
}

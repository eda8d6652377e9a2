package decision

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ErrClientAddr marks a client address that is refused: every transport
// answers it 400 with the message.
var ErrClientAddr = errors.New("client address refused")

// maxClientAddr bounds a client address as sent: the longest IPv6
// address with brackets and a port is 47 bytes.
const maxClientAddr = 64

// ParseClientAddr is the one parser of the client address for every
// transport (the decide body's remote_ip, the forward-auth headers,
// ext_authz's source address): an IP address, optionally with a port
// (1.2.3.4:5, [::1]:5), which is dropped; an IPv4-mapped IPv6 address is
// read as the IPv4 address. A zone (fe80::1%eth0), a bad port, a host
// name, and anything longer than 64 bytes are refused with an error
// matching ErrClientAddr.
func ParseClientAddr(s string) (netip.Addr, error) {
	if len(s) > maxClientAddr {
		return netip.Addr{}, clientAddrError("is longer than %d bytes", maxClientAddr)
	}
	host := s
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return netip.Addr{}, clientAddrError("has no closing ]")
		}
		host = s[1:end]
		if rest := s[end+1:]; rest != "" {
			if !strings.HasPrefix(rest, ":") {
				return netip.Addr{}, clientAddrError("has %q after the ]", rest)
			}
			if err := checkPort(rest[1:]); err != nil {
				return netip.Addr{}, err
			}
		}
		if !strings.Contains(host, ":") {
			return netip.Addr{}, clientAddrError("has brackets around what is not an IPv6 address")
		}
	case strings.Count(s, ":") == 1:
		var port string
		host, port, _ = strings.Cut(s, ":")
		if err := checkPort(port); err != nil {
			return netip.Addr{}, err
		}
		if !strings.Contains(host, ".") {
			return netip.Addr{}, clientAddrError("is not an IP address")
		}
	}
	if strings.Contains(host, "%") {
		return netip.Addr{}, clientAddrError("has a zone")
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, clientAddrError("is not an IP address")
	}
	return a.Unmap(), nil
}

func checkPort(p string) error {
	if p == "" || len(p) > 5 || strings.TrimLeft(p, "0123456789") != "" {
		return clientAddrError("has a port that is not a number")
	}
	if n, _ := strconv.Atoi(p); n < 1 || n > 65535 {
		return clientAddrError("has a port outside 1..65535")
	}
	return nil
}

func clientAddrError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrClientAddr, fmt.Sprintf(format, args...))
}
